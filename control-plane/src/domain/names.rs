//! Bounded, trimmed text values shared by several resources.

use serde::{Deserialize, Serialize};

/// Why a value could not be parsed. The message is shown to the user next to
/// the field it concerns, so it says what is wrong and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Checks the length of an already-trimmed value in characters (not bytes, so
/// that limits mean the same thing for every script), and refuses control
/// characters other than line breaks and tabs when `multiline` is set.
fn check_text(value: &str, min: usize, max: usize, multiline: bool) -> Result<(), ParseError> {
    let len = value.chars().count();
    if len < min {
        return Err(if min == 1 {
            ParseError::new("must not be empty")
        } else {
            ParseError::new(format!("must be at least {min} characters"))
        });
    }
    if len > max {
        return Err(ParseError::new(format!("must be at most {max} characters")));
    }
    let bad = value.chars().any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')));
    if bad {
        return Err(ParseError::new(if multiline {
            "must not contain control characters"
        } else {
            "must be a single line without control characters"
        }));
    }
    Ok(())
}

macro_rules! bounded_text {
    ($(#[$meta:meta])* $name:ident, min = $min:expr, max = $max:expr, multiline = $multi:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        // The OpenAPI document states the bounds the parser enforces.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .min_length(Some($min))
                    .max_length(Some($max))
                    .description(Some(format!(
                        "{} to {} characters{}",
                        $min,
                        $max,
                        if $multi { ", line breaks allowed" } else { ", one line" }
                    )))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl $name {
            pub const MAX_CHARS: usize = $max;

            pub fn parse(value: &str) -> Result<Self, ParseError> {
                let value = value.trim();
                check_text(value, $min, $max, $multi)?;
                Ok(Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(value: String) -> Result<Self, ParseError> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

bounded_text!(
    /// A display name for a person, tenant, project, campaign or API key:
    /// one line, 1 to 200 characters after trimming.
    Name, min = 1, max = 200, multiline = false
);

bounded_text!(
    #[derive(Default)]
    /// A short free-text description: up to 2,000 characters, line breaks allowed.
    Description,
    min = 0,
    max = 2_000,
    multiline = true
);

bounded_text!(
    #[derive(Default)]
    /// Long free text such as brand voice guidelines: up to 20,000 characters.
    LongText,
    min = 0,
    max = 20_000,
    multiline = true
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("  Acme  ").unwrap().as_str(), "Acme");
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"x".repeat(201)).is_err());
        assert!(Name::parse(&"é".repeat(200)).is_ok(), "limits count characters, not bytes");
        assert!(Name::parse("two\nlines").is_err());
        assert!(Description::parse("two\nlines").is_ok());
        assert!(Description::parse("").is_ok());
        assert!(Description::parse("bell\u{7}").is_err());
    }
}
