//! `[telemetry]`: trace export over OTLP and the Prometheus metrics. The standard OpenTelemetry
//! variables override the file (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, then
//! `OTEL_EXPORTER_OTLP_ENDPOINT`; `OTEL_SERVICE_NAME`; `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG`), so hooknorm is configured like any other traced service.
//! `OTEL_RESOURCE_ATTRIBUTES` is read by the SDK when export starts. No endpoint, no export.

use serde::Deserialize;

use super::ConfigError;

/// `[telemetry]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryFile {
    /// The OTLP/gRPC collector, e.g. `http://otel-collector:4317`; unset: traces are not
    /// exported.
    #[serde(default)]
    otlp_endpoint: Option<String>,
    #[serde(default = "default_service_name")]
    service_name: String,
    /// One of the `OTEL_TRACES_SAMPLER` names.
    #[serde(default = "default_sampler")]
    sampler: String,
    /// The ratio for the `*traceidratio` samplers.
    #[serde(default)]
    sampler_arg: Option<f64>,
    /// Serve `GET /metrics` on the ops listener.
    #[serde(default = "default_metrics")]
    metrics: bool,
}

fn default_service_name() -> String {
    "hooknorm".to_owned()
}

fn default_sampler() -> String {
    "parentbased_always_on".to_owned()
}

fn default_metrics() -> bool {
    true
}

impl Default for TelemetryFile {
    fn default() -> Self {
        TelemetryFile {
            otlp_endpoint: None,
            service_name: default_service_name(),
            sampler: default_sampler(),
            sampler_arg: None,
            metrics: default_metrics(),
        }
    }
}

/// Which traces are recorded, as OpenTelemetry names the choices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TraceSampler {
    AlwaysOn,
    AlwaysOff,
    /// This fraction of traces, chosen by trace id.
    TraceIdRatio(f64),
    /// As the caller's sampled flag says when there is a caller; otherwise the inner choice.
    ParentBased(ParentlessSampler),
}

/// [`TraceSampler::ParentBased`]'s choice for traces that start here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParentlessSampler {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
}

/// `[telemetry]`, validated.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Where spans are exported; `None`: tracing stays in the log, at no extra cost.
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
    pub sampler: TraceSampler,
    pub metrics: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: default_service_name(),
            sampler: TraceSampler::ParentBased(ParentlessSampler::AlwaysOn),
            metrics: default_metrics(),
        }
    }
}

impl TelemetryFile {
    /// Applies the `OTEL_*` overrides; a sampler set there is named by its variable in errors.
    pub(super) fn apply_env(
        &mut self,
        var: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        // Empty means unset, as the OpenTelemetry specification reads these variables.
        let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        if let Some(endpoint) =
            set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"))
        {
            self.otlp_endpoint = Some(endpoint);
        }
        if let Some(name) = set("OTEL_SERVICE_NAME") {
            self.service_name = name;
        }
        if let Some(sampler) = set("OTEL_TRACES_SAMPLER") {
            self.sampler = sampler;
        }
        if let Some(arg) = set("OTEL_TRACES_SAMPLER_ARG") {
            let arg = arg.trim().parse().map_err(|_| {
                ConfigError::invalid("OTEL_TRACES_SAMPLER_ARG", "must be a number from 0 to 1")
            })?;
            self.sampler_arg = Some(arg);
        }
        Ok(())
    }

    /// Errors name the file's key; the variable overriding it, if set, has the same name in
    /// the OpenTelemetry spelling.
    pub(super) fn validate(self) -> Result<TelemetryConfig, ConfigError> {
        if let Some(endpoint) = &self.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(ConfigError::invalid(
                "telemetry.otlp_endpoint",
                "must be an http:// or https:// url",
            ));
        }
        if self.service_name.trim().is_empty() {
            return Err(ConfigError::invalid(
                "telemetry.service_name",
                "must not be empty",
            ));
        }
        let ratio = || match self.sampler_arg {
            None => Ok(1.0),
            Some(arg) if (0.0..=1.0).contains(&arg) => Ok(arg),
            Some(_) => Err(ConfigError::invalid(
                "telemetry.sampler_arg",
                "must be a number from 0 to 1",
            )),
        };
        let sampler = match self.sampler.as_str() {
            "always_on" => TraceSampler::AlwaysOn,
            "always_off" => TraceSampler::AlwaysOff,
            "traceidratio" => TraceSampler::TraceIdRatio(ratio()?),
            "parentbased_always_on" => TraceSampler::ParentBased(ParentlessSampler::AlwaysOn),
            "parentbased_always_off" => TraceSampler::ParentBased(ParentlessSampler::AlwaysOff),
            "parentbased_traceidratio" => {
                TraceSampler::ParentBased(ParentlessSampler::TraceIdRatio(ratio()?))
            }
            _ => {
                return Err(ConfigError::invalid(
                    "telemetry.sampler",
                    "expected always_on, always_off, traceidratio, parentbased_always_on, \
                     parentbased_always_off or parentbased_traceidratio",
                ));
            }
        };
        Ok(TelemetryConfig {
            otlp_endpoint: self.otlp_endpoint,
            service_name: self.service_name,
            sampler,
            metrics: self.metrics,
        })
    }
}
