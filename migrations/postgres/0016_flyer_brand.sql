-- Flyers: the paper they are laid out for, the brand's two colours, and
-- whether a logo is stored (its file lives in the file storage under the
-- tenant's branding key; NULL: no logo).
ALTER TABLE real_estate_settings ADD COLUMN paper_size TEXT NOT NULL DEFAULT 'letter'
    CHECK (paper_size IN ('letter', 'a4'));
ALTER TABLE real_estate_settings ADD COLUMN brand_color TEXT NOT NULL DEFAULT '#1f4e79';
ALTER TABLE real_estate_settings ADD COLUMN accent_color TEXT NOT NULL DEFAULT '#b4461e';
ALTER TABLE real_estate_settings ADD COLUMN logo_type TEXT;
