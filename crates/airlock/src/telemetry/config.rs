//! `[telemetry]` and the standard `OTEL_*` variables over it: where spans
//! go, over which protocol, as which service, and which traces are kept.
//!
//! The variables are the OpenTelemetry SDK's own (the specification's
//! "SDK environment variables"), so a collector sidecar or an operator that
//! injects them configures Airlock like any other service. A variable wins
//! over the file, as `AIRLOCK_*` variables do. A value Airlock cannot honour
//! (a sampler it does not have, OTLP over JSON) stops the start with the
//! variable's name rather than being ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use airlock_domain::settings::{self, InvalidKey};

/// `[telemetry]`: OpenTelemetry traces of requests, dispatches and Airbyte
/// calls, exported over OTLP. Logs are set by flags, not here.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The collector's OTLP base URL (`http://collector:4318` for
    /// HTTP, `http://collector:4317` for gRPC); over HTTP spans go to
    /// `{otlp_endpoint}/v1/traces`. Absent (and no `OTEL_EXPORTER_OTLP_*`
    /// endpoint either): no traces.
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` (the default) or `grpc`.
    pub otlp_protocol: Protocol,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// More resource attributes (`deployment.environment.name = "prod"`).
    pub resource_attributes: BTreeMap<String, String>,
    /// The share of traces kept, from 0.0 to 1.0, decided where a trace
    /// starts: at Airlock for a request without `traceparent`, else by the
    /// caller (its sampled flag is followed).
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            otlp_protocol: Protocol::HttpProtobuf,
            service_name: "airlock".to_owned(),
            resource_attributes: BTreeMap::new(),
            sample_ratio: 1.0,
        }
    }
}

/// OTLP's transports that Airlock speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Protocol {
    /// Protobuf messages POSTed over HTTP.
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// gRPC (HTTP/2).
    #[serde(rename = "grpc")]
    Grpc,
}

impl Protocol {
    fn parse(key: &str, value: &str) -> Result<Self, InvalidKey> {
        match value.trim() {
            "http/protobuf" => Ok(Self::HttpProtobuf),
            "grpc" => Ok(Self::Grpc),
            "http/json" => Err(InvalidKey::new(
                key,
                "OTLP over JSON is not supported: use http/protobuf or grpc",
            )),
            other => Err(InvalidKey::new(
                key,
                format!("`{other}` is not an OTLP protocol (http/protobuf or grpc)"),
            )),
        }
    }

    /// The specification's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpProtobuf => "http/protobuf",
            Self::Grpc => "grpc",
        }
    }
}

/// Which traces are kept: a share of the traces that start here, and,
/// when `parent_based`, the caller's decision for the ones that do not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    pub ratio: f64,
    pub parent_based: bool,
}

/// The export queue: spans waiting beyond `max_queue` are dropped (and
/// counted); a batch leaves when it holds `max_batch` spans or after `delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queue {
    pub max_queue: usize,
    pub max_batch: usize,
    pub delay: Duration,
}

/// The trace export in effect, when there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    pub protocol: Protocol,
    /// Where spans are sent: the whole URL over HTTP (`…/v1/traces`), the
    /// collector's address over gRPC.
    pub endpoint: String,
    /// `service.name`: `OTEL_SERVICE_NAME`, else the file's; `None` when
    /// `OTEL_RESOURCE_ATTRIBUTES` names it (that variable wins over the file).
    pub service_name: Option<String>,
    pub resource_attributes: BTreeMap<String, String>,
    pub sampling: Sampling,
    pub queue: Queue,
}

impl TelemetryConfig {
    pub fn validate(&self) -> Result<(), InvalidKey> {
        if let Some(endpoint) = &self.otlp_endpoint {
            http_url("telemetry.otlp_endpoint", endpoint)?;
        }
        if self.service_name.trim().is_empty() {
            return Err(InvalidKey::new(
                "telemetry.service_name",
                "must not be empty",
            ));
        }
        ratio("telemetry.sample_ratio", self.sample_ratio)?;
        Ok(())
    }

    /// The export this file and these variables ask for: `None` when no
    /// endpoint is given, or `OTEL_SDK_DISABLED=true`, or
    /// `OTEL_TRACES_EXPORTER=none`. Errors name the key or the variable.
    pub fn export(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Export>, InvalidKey> {
        self.validate()?;
        let var = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match var("OTEL_TRACES_EXPORTER").as_deref().map(str::trim) {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(InvalidKey::new(
                    "OTEL_TRACES_EXPORTER",
                    format!("`{other}` is not supported: use otlp or none"),
                ));
            }
        }
        let protocol = match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") {
            Some(value) => Protocol::parse("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", &value)?,
            None => match var("OTEL_EXPORTER_OTLP_PROTOCOL") {
                Some(value) => Protocol::parse("OTEL_EXPORTER_OTLP_PROTOCOL", &value)?,
                None => self.otlp_protocol,
            },
        };
        let Some(endpoint) = endpoint(protocol, &var, self.otlp_endpoint.as_deref())? else {
            return Ok(None);
        };
        let service_name = match var("OTEL_SERVICE_NAME") {
            Some(name) => Some(name.trim().to_owned()),
            None if var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|list| names_service(&list)) => {
                None
            }
            None => Some(self.service_name.clone()),
        };
        Ok(Some(Export {
            protocol,
            endpoint,
            service_name,
            resource_attributes: self.resource_attributes.clone(),
            sampling: sampling(&var, self.sample_ratio)?,
            queue: queue(&var)?,
        }))
    }
}

/// The signal's own variable is the whole URL; the general one and the
/// file's key are a base that HTTP adds `/v1/traces` to.
fn endpoint(
    protocol: Protocol,
    var: &dyn Fn(&str) -> Option<String>,
    file: Option<&str>,
) -> Result<Option<String>, InvalidKey> {
    if let Some(url) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        http_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url.trim())?;
        return Ok(Some(url.trim().to_owned()));
    }
    let base = match var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Some(url) => {
            http_url("OTEL_EXPORTER_OTLP_ENDPOINT", url.trim())?;
            url.trim().to_owned()
        }
        None => match file {
            Some(url) => url.to_owned(),
            None => return Ok(None),
        },
    };
    Ok(Some(match protocol {
        Protocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
        Protocol::Grpc => base,
    }))
}

/// `OTEL_TRACES_SAMPLER` (and its argument) over `sample_ratio`, which is
/// `parentbased_traceidratio`.
fn sampling(var: &dyn Fn(&str) -> Option<String>, file_ratio: f64) -> Result<Sampling, InvalidKey> {
    let argument = || -> Result<f64, InvalidKey> {
        match var("OTEL_TRACES_SAMPLER_ARG") {
            None => Ok(1.0),
            Some(text) => {
                let value = text.trim().parse::<f64>().map_err(|_| {
                    InvalidKey::new(
                        "OTEL_TRACES_SAMPLER_ARG",
                        format!("`{text}` is not a number"),
                    )
                })?;
                ratio("OTEL_TRACES_SAMPLER_ARG", value).map(|()| value)
            }
        }
    };
    let Some(name) = var("OTEL_TRACES_SAMPLER") else {
        return Ok(Sampling {
            ratio: file_ratio,
            parent_based: true,
        });
    };
    let (ratio, parent_based) = match name.trim() {
        "always_on" => (1.0, false),
        "always_off" => (0.0, false),
        "traceidratio" => (argument()?, false),
        "parentbased_always_on" => (1.0, true),
        "parentbased_always_off" => (0.0, true),
        "parentbased_traceidratio" => (argument()?, true),
        other => {
            return Err(InvalidKey::new(
                "OTEL_TRACES_SAMPLER",
                format!(
                    "`{other}` is not supported: use always_on, always_off, traceidratio \
                     or their parentbased_ forms"
                ),
            ));
        }
    };
    Ok(Sampling {
        ratio,
        parent_based,
    })
}

/// The batch span processor's variables, with the specification's defaults.
fn queue(var: &dyn Fn(&str) -> Option<String>) -> Result<Queue, InvalidKey> {
    let number = |name: &str, default: u64| -> Result<u64, InvalidKey> {
        let Some(text) = var(name) else {
            return Ok(default);
        };
        match text.trim().parse::<u64>() {
            Ok(value) if value > 0 => Ok(value),
            _ => Err(InvalidKey::new(
                name,
                format!("`{text}` is not a positive whole number"),
            )),
        }
    };
    let max_queue = usize::try_from(number("OTEL_BSP_MAX_QUEUE_SIZE", 2048)?).unwrap_or(usize::MAX);
    let max_batch = usize::try_from(number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)?)
        .unwrap_or(usize::MAX)
        .min(max_queue);
    Ok(Queue {
        max_queue,
        max_batch,
        delay: Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", 5000)?),
    })
}

/// Whether an `OTEL_RESOURCE_ATTRIBUTES` list (`key=value,…`) sets
/// `service.name`.
fn names_service(list: &str) -> bool {
    list.split(',')
        .filter_map(|pair| pair.split_once('='))
        .any(|(key, _)| key.trim() == "service.name")
}

/// An http(s) URL without credentials: the exporter's errors, which are
/// logged, may show it (the collector's credentials go in
/// `OTEL_EXPORTER_OTLP_HEADERS`).
fn http_url(key: &str, url: &str) -> Result<(), InvalidKey> {
    settings::http_url(key, url)?;
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(InvalidKey::new(
            key,
            "must not carry credentials: give them in OTEL_EXPORTER_OTLP_HEADERS",
        ));
    }
    Ok(())
}

fn ratio(key: &str, value: f64) -> Result<(), InvalidKey> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(InvalidKey::new(key, "must be between 0.0 and 1.0"))
    }
}

#[cfg(test)]
mod tests;
