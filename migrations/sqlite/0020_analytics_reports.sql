-- Analytics reports read a tenant's published posts by publication time.
CREATE INDEX social_posts_published ON social_posts (tenant_id, published_at) WHERE status = 'published';
