//! `GET /api/openapi.json`: an OpenAPI 3.0 description of the token API, for
//! platform developers and for API fuzzers such as schemathesis.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub(super) async fn document() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        spec().to_string(),
    )
        .into_response()
}

fn envelope_response(description: &str, value: Value) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": {
            "allOf": [
                { "$ref": "#/components/schemas/Envelope" },
                { "type": "object", "properties": { "Value": value } }
            ]
        }}}
    })
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorEnvelope" } } }
    })
}

/// The document itself.
pub fn spec() -> Value {
    let id_param = json!({
        "name": "id", "in": "path", "required": true,
        "schema": { "type": "integer", "format": "int64", "minimum": 1 }
    });
    let auth_errors = |ok: Value, role: &str| {
        let mut responses = serde_json::Map::new();
        responses.insert("200".into(), ok);
        responses.insert("400".into(), error_response("Validation failed"));
        responses.insert(
            "401".into(),
            error_response("No or an invalid bearer token"),
        );
        responses.insert(
            "403".into(),
            error_response(&format!("The API key lacks the role {role} (or Admin)")),
        );
        Value::Object(responses)
    };
    let mut read_responses = auth_errors(
        envelope_response(
            "The token",
            json!({ "$ref": "#/components/schemas/AccessToken" }),
        ),
        "AccessToken-Read",
    );
    read_responses["404"] = error_response("No token with this Id");
    let mut delete_responses = auth_errors(
        envelope_response("Deleted", json!({ "$ref": "#/components/schemas/IdValue" })),
        "AccessToken-Delete",
    );
    delete_responses["404"] = error_response("No token with this Id");
    delete_responses["409"] = error_response("The token came from Nexudus: delete it there");
    let mut update_responses = auth_errors(
        envelope_response("Updated", json!({ "$ref": "#/components/schemas/IdValue" })),
        "AccessToken-Edit",
    );
    update_responses["404"] = error_response("No token with this Id");
    update_responses["409"] = error_response("The token came from Nexudus: change it there");
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "pinradius access token API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Wi-Fi access tokens for coworking hotspots, in the shape of the coworking platform's /api/spaces/accesstokens. A token created here works over RADIUS with the very next Access-Request."
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/api/spaces/accesstokens": {
                "post": {
                    "summary": "Create an access token",
                    "operationId": "createAccessToken",
                    "requestBody": { "required": true, "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/NewAccessToken" }
                    }}},
                    "responses": auth_errors(
                        envelope_response("Created", json!({ "$ref": "#/components/schemas/IdValue" })),
                        "AccessToken-Create"
                    )
                },
                "get": {
                    "summary": "List access tokens, one page at a time, in Id order",
                    "operationId": "listAccessTokens",
                    "parameters": [
                        { "name": "page", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 4294967295_u64, "default": 1 } },
                        { "name": "size", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 25 } },
                        { "name": "BusinessId", "in": "query", "schema": { "type": "integer", "format": "int64", "minimum": 1 } },
                        { "name": "AccessCode", "in": "query", "schema": { "type": "string" } }
                    ],
                    "responses": auth_errors(
                        envelope_response("A page of tokens", json!({ "$ref": "#/components/schemas/Page" })),
                        "AccessToken-Read"
                    )
                }
            },
            "/api/spaces/accesstokens/{id}": {
                "get": {
                    "summary": "Read one access token with its usage",
                    "operationId": "readAccessToken",
                    "parameters": [id_param.clone()],
                    "responses": read_responses
                },
                "put": {
                    "summary": "Replace an access token's fields (validated as on create); a changed code disconnects the sessions of the old one",
                    "operationId": "updateAccessToken",
                    "parameters": [id_param.clone()],
                    "requestBody": { "required": true, "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/NewAccessToken" }
                    }}},
                    "responses": update_responses
                },
                "delete": {
                    "summary": "Delete an access token; its open sessions are disconnected (RFC 5176)",
                    "operationId": "deleteAccessToken",
                    "parameters": [id_param],
                    "responses": delete_responses
                }
            }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "NewAccessToken": {
                    "type": "object",
                    "required": ["BusinessId", "AccessCode", "MinutesIncluded"],
                    "properties": {
                        "BusinessId": { "type": "integer", "format": "int64", "minimum": 1, "description": "Business Id." },
                        "AccessCode": { "type": "string", "minLength": 1, "maxLength": 128, "description": "Unique network access code used to connect to WiFi." },
                        "MinutesIncluded": { "type": "integer", "minimum": 1, "maximum": crate::model::MAX_MINUTES, "description": "Total minutes of WiFi access included in this token." },
                        "Description": { "type": "string", "nullable": true, "maxLength": 1024 },
                        "ValidFrom": { "type": "string", "format": "date-time", "nullable": true, "description": "Start date from which this token can be used (RFC 3339)." },
                        "ValidTo": { "type": "string", "format": "date-time", "nullable": true, "description": "Expiration date after which this token is no longer valid (RFC 3339)." },
                        "UserLimit": { "type": "integer", "minimum": 1, "maximum": 10000, "nullable": true, "description": "Maximum number of users that can use this token simultaneously." },
                        "DeviceLimit": { "type": "integer", "minimum": 1, "maximum": 10000, "nullable": true, "description": "Maximum number of distinct devices (pinradius extension)." },
                        "MacAddress": { "type": "string", "nullable": true, "description": "MAC address of the only device that may use this token." },
                        "BookingGuid": { "type": "string", "format": "uuid", "nullable": true },
                        "VisitorGuid": { "type": "string", "format": "uuid", "nullable": true }
                    }
                },
                "AccessToken": {
                    "type": "object",
                    "properties": {
                        "Id": { "type": "integer", "format": "int64" },
                        "BusinessId": { "type": "integer", "format": "int64" },
                        "AccessCode": { "type": "string" },
                        "MinutesIncluded": { "type": "integer" },
                        "Description": { "type": "string", "nullable": true },
                        "ValidFrom": { "type": "string", "format": "date-time", "nullable": true },
                        "ValidTo": { "type": "string", "format": "date-time", "nullable": true },
                        "UserLimit": { "type": "integer", "nullable": true },
                        "DeviceLimit": { "type": "integer", "nullable": true },
                        "MacAddress": { "type": "string", "nullable": true },
                        "BookingGuid": { "type": "string", "nullable": true },
                        "VisitorGuid": { "type": "string", "nullable": true },
                        "CustomerId": { "type": "integer", "nullable": true },
                        "CreatedOn": { "type": "string", "format": "date-time" },
                        "Revoked": { "type": "boolean" },
                        "RevokedOn": { "type": "string", "format": "date-time", "nullable": true },
                        "BoundDevices": { "type": "array", "items": { "type": "string" } },
                        "OpenSessions": { "type": "integer" },
                        "SecondsUsed": { "type": "integer", "description": "Accounted time plus the running time of open sessions." },
                        "SecondsLeft": { "type": "integer" },
                        "MinutesUsed": { "type": "integer", "description": "SecondsUsed / 60, rounded down." },
                        "MinutesLeft": { "type": "integer", "description": "SecondsLeft / 60, rounded down." }
                    }
                },
                "IdValue": { "type": "object", "properties": { "Id": { "type": "integer", "format": "int64" } } },
                "Page": {
                    "type": "object",
                    "properties": {
                        "Records": { "type": "array", "items": { "$ref": "#/components/schemas/AccessToken" } },
                        "CurrentPage": { "type": "integer" },
                        "CurrentPageSize": { "type": "integer" },
                        "PageNumber": { "type": "integer" },
                        "PageSize": { "type": "integer" },
                        "TotalItems": { "type": "integer" },
                        "TotalPages": { "type": "integer" },
                        "HasNextPage": { "type": "boolean" },
                        "HasPreviousPage": { "type": "boolean" }
                    }
                },
                "Envelope": {
                    "type": "object",
                    "required": ["Status", "Message", "Value", "WasSuccessful", "Errors"],
                    "properties": {
                        "Status": { "type": "integer" },
                        "Message": { "type": "string" },
                        "Value": {},
                        "OpenInDialog": { "type": "boolean" },
                        "OpenInWindow": { "type": "boolean" },
                        "RedirectURL": { "type": "string", "nullable": true },
                        "JavaScript": { "type": "string", "nullable": true },
                        "UpdatedOn": { "type": "string", "format": "date-time" },
                        "UpdatedBy": { "type": "string", "description": "The name of the API key." },
                        "Errors": { "nullable": true, "type": "array", "items": { "$ref": "#/components/schemas/Error" } },
                        "WasSuccessful": { "type": "boolean" }
                    }
                },
                "ErrorEnvelope": {
                    "type": "object",
                    "required": ["Message", "Value", "Errors", "WasSuccessful"],
                    "properties": {
                        "Status": { "type": "integer" },
                        "Message": { "type": "string", "description": "PropertyName: message, for each error, joined by \"; \"." },
                        "Value": { "nullable": true },
                        "Errors": { "type": "array", "items": { "$ref": "#/components/schemas/Error" } },
                        "WasSuccessful": { "type": "boolean", "enum": [false] }
                    }
                },
                "Error": {
                    "type": "object",
                    "properties": {
                        "AttemptedValue": {},
                        "Message": { "type": "string" },
                        "PropertyName": { "type": "string" }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn document_names_every_route() {
        let spec = super::spec();
        let paths = spec["paths"].as_object().unwrap();
        assert!(paths["/api/spaces/accesstokens"]["post"].is_object());
        assert!(paths["/api/spaces/accesstokens"]["get"].is_object());
        assert!(paths["/api/spaces/accesstokens/{id}"]["get"]["responses"]["404"].is_object());
        assert!(paths["/api/spaces/accesstokens/{id}"]["delete"].is_object());
        assert!(paths["/api/spaces/accesstokens/{id}"]["put"]["responses"]["409"].is_object());
        assert_eq!(
            spec["components"]["schemas"]["NewAccessToken"]["required"],
            serde_json::json!(["BusinessId", "AccessCode", "MinutesIncluded"])
        );
    }
}
