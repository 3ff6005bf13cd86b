//! Admin operations shared by the CLI and (later) the HTTP API: input validation in
//! one place, store calls, and rendering for the terminal. Time is a parameter.

pub mod lockouts;
pub mod people;
pub mod sessions;
pub mod sync;
pub mod token_edits;
pub mod tokens;

use crate::store::StoreError;

/// Which input field a validation error is about, named the way each front end
/// spells it: the CLI flag, the CSV column, and the API's PropertyName.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    BusinessId,
    AccessCode,
    MinutesIncluded,
    Description,
    ValidFrom,
    ValidTo,
    UserLimit,
    DeviceLimit,
    MacAddress,
    BookingGuid,
    VisitorGuid,
    At,
    Name,
    Email,
    ExpectedArrival,
    Pin,
    CustomerId,
    Guid,
    SessionId,
}

impl Field {
    pub fn cli_flag(self) -> &'static str {
        match self {
            Self::BusinessId => "--business-id",
            Self::AccessCode => "--code",
            Self::MinutesIncluded => "--minutes",
            Self::Description => "--description",
            Self::ValidFrom => "--valid-from",
            Self::ValidTo => "--valid-to",
            Self::UserLimit => "--user-limit",
            Self::DeviceLimit => "--device-limit",
            Self::MacAddress => "--mac",
            Self::BookingGuid => "--booking-guid",
            Self::VisitorGuid => "--visitor-guid",
            Self::At => "--at",
            Self::Name => "--name",
            Self::Email => "--email",
            Self::ExpectedArrival => "--expected-arrival",
            Self::Pin => "PIN",
            Self::CustomerId => "ID",
            Self::Guid => "GUID",
            Self::SessionId => "ID",
        }
    }

    pub fn csv_column(self) -> &'static str {
        match self {
            Self::BusinessId => "business_id",
            Self::AccessCode => "access_code",
            Self::MinutesIncluded => "minutes_included",
            Self::Description => "description",
            Self::ValidFrom => "valid_from",
            Self::ValidTo => "valid_to",
            Self::UserLimit => "user_limit",
            Self::DeviceLimit => "device_limit",
            Self::MacAddress => "mac_address",
            Self::BookingGuid => "booking_guid",
            Self::VisitorGuid => "visitor_guid",
            Self::At => "at",
            Self::Name => "name",
            Self::Email => "email",
            Self::ExpectedArrival => "expected_arrival",
            Self::Pin => "pin",
            Self::CustomerId => "customer_id",
            Self::Guid => "guid",
            Self::SessionId => "session_id",
        }
    }

    pub fn api_name(self) -> &'static str {
        match self {
            Self::BusinessId => "BusinessId",
            Self::AccessCode => "AccessCode",
            Self::MinutesIncluded => "MinutesIncluded",
            Self::Description => "Description",
            Self::ValidFrom => "ValidFrom",
            Self::ValidTo => "ValidTo",
            Self::UserLimit => "UserLimit",
            Self::DeviceLimit => "DeviceLimit",
            Self::MacAddress => "MacAddress",
            Self::BookingGuid => "BookingGuid",
            Self::VisitorGuid => "VisitorGuid",
            Self::At => "At",
            Self::Name => "Name",
            Self::Email => "Email",
            Self::ExpectedArrival => "ExpectedArrival",
            Self::Pin => "PinCode",
            Self::CustomerId => "CustomerId",
            Self::Guid => "Guid",
            Self::SessionId => "SessionId",
        }
    }
}

/// One bad input value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: Field,
    /// The value as given (codes are not echoed here, see `tokens::parse`).
    pub value: Option<String>,
    pub message: String,
}

/// A time for the terminal: RFC 3339 UTC to the second, or "-".
pub(crate) fn time_text(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".into())
}

/// How a front end names fields in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    Cli,
    Csv,
}

pub fn describe(errors: &[FieldError], naming: Naming) -> String {
    errors
        .iter()
        .map(|e| {
            let name = match naming {
                Naming::Cli => e.field.cli_flag(),
                Naming::Csv => e.field.csv_column(),
            };
            match &e.value {
                Some(v) => format!("{name}: {v:?} {}", e.message),
                None => format!("{name}: {}", e.message),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{}", describe(.0, Naming::Cli))]
    Invalid(Vec<FieldError>),
    #[error("{file} line {line}: {message}")]
    Csv {
        file: String,
        line: u64,
        message: String,
    },
    #[error("no access token with code {code}{}", .business_id.map(|b| format!(" in business {b}")).unwrap_or_default())]
    NotFound {
        code: String,
        business_id: Option<i64>,
    },
    #[error("code {code} exists in businesses {businesses:?}; add --business-id")]
    Ambiguous { code: String, businesses: Vec<i64> },
    #[error(
        "{what} came from Nexudus ({entity} {platform_id}): change it there, or add --force (the next full sync puts the platform's version back)"
    )]
    FromPlatform {
        /// What was to be edited: "code ***45", "customer 5", "visitor GUID".
        what: String,
        entity: String,
        platform_id: i64,
    },
    #[error(
        "code {code} is the PIN of {owner}: change the person, not the token (`customer set-pin`, `customer deactivate`, or at the platform)"
    )]
    PinToken { code: String, owner: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refuses to edit a member or visitor that came from the platform, unless `force`
/// (`entity`: the platform's entity; `local_id`: the customer's id, the visitor's
/// guid).
pub fn local_person(
    store: &crate::store::Store,
    entity: &str,
    local_id: &str,
    what: impl Into<String>,
    force: bool,
) -> Result<(), CommandError> {
    match store.platform_id_of(entity, local_id)? {
        Some(platform_id) if !force => Err(CommandError::FromPlatform {
            what: what.into(),
            entity: entity.to_string(),
            platform_id,
        }),
        _ => Ok(()),
    }
}
