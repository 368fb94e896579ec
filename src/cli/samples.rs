//! Built-in sample webhooks, one per documented provider event shape, shared with the test
//! fixtures so the tour and the tests show the same payloads.

use crate::providers::ProviderKind;

/// A named sample body.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub provider: ProviderKind,
    pub name: &'static str,
    pub body: &'static str,
}

macro_rules! sample {
    ($provider:ident, $dir:literal, $name:literal) => {
        Sample {
            provider: ProviderKind::$provider,
            name: $name,
            body: include_str!(concat!("../../tests/fixtures/", $dir, "/", $name, ".json")),
        }
    };
}

/// Every built-in sample; the first of each provider is its default.
pub const SAMPLES: &[Sample] = &[
    sample!(Gigs, "gigs", "subscription.activated"),
    sample!(Gigs, "gigs", "sim.retired"),
    sample!(Gigs, "gigs", "project.updated"),
    sample!(Gigs, "gigs", "portOutCredentials.issued"),
    sample!(Gigs, "gigs", "subscriptionChange.applied"),
    sample!(Gigs, "gigs", "usageThreshold.exceeded"),
    sample!(Gigs, "gigs", "device.updated"),
    sample!(Gigs, "gigs", "porting.requested"),
    sample!(Abowire, "abowire", "api-key.revoke"),
    sample!(Abowire, "abowire", "subscription.bulk-enable"),
    sample!(Abowire, "abowire", "current.customer.updated"),
    sample!(MobileManager, "mobile_manager", "order.complete"),
    sample!(MobileManager, "mobile_manager", "alert.on"),
    sample!(MobileManager, "mobile_manager", "alert.off"),
];

/// The sample called `name` for `provider`, or the provider's default when `name` is `None`.
pub fn find(provider: ProviderKind, name: Option<&str>) -> Option<&'static Sample> {
    SAMPLES
        .iter()
        .filter(|sample| sample.provider == provider)
        .find(|sample| name.is_none_or(|name| sample.name == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_has_a_default_and_samples_are_json_objects() {
        for provider in [
            ProviderKind::Gigs,
            ProviderKind::Abowire,
            ProviderKind::MobileManager,
        ] {
            assert!(find(provider, None).is_some(), "{provider:?}");
        }
        for sample in SAMPLES {
            assert!(
                crate::json::parse_object(sample.body.as_bytes()).is_ok(),
                "{}",
                sample.name
            );
        }
        assert!(find(ProviderKind::Gigs, Some("alert.on")).is_none());
    }
}
