//! The Jetson device collector: a view of the tegrastats source's latest reading.
//!
//! Device types map to collectors through one exhaustive `match` ([`device_collector`]), so a
//! new device type does not compile until it is wired.

use std::time::Duration;

use super::jetson::{self, Model};
use super::{CollectError, Collector, Values};
use crate::config::DeviceType;
use crate::tegrastats::source::TegraHandle;

/// The model whose parsing rules a device type uses, and so its collector.
pub fn model_for(kind: DeviceType) -> Model {
    match kind {
        DeviceType::JetsonOrin | DeviceType::Jetson => Model::Orin, // spec: generic uses Orin
        DeviceType::JetsonXavier => Model::Xavier,
        DeviceType::JetsonNano => Model::Nano,
    }
}

/// The collector for a configured device type.
pub fn device_collector(
    kind: DeviceType,
    source: TegraHandle,
    interval: Duration,
) -> Box<dyn Collector> {
    Box::new(JetsonCollector::new(model_for(kind), source, interval))
}

/// Values of the latest tegrastats reading, parsed with one model's rules.
pub struct JetsonCollector {
    model: Model,
    source: TegraHandle,
    stale_after: Duration,
}

impl JetsonCollector {
    /// A collector for `model`; a reading older than three `interval`s is stale.
    pub fn new(model: Model, source: TegraHandle, interval: Duration) -> JetsonCollector {
        JetsonCollector {
            model,
            source,
            stale_after: interval * 3,
        }
    }
}

impl Collector for JetsonCollector {
    fn name(&self) -> &'static str {
        self.model.collector_name()
    }

    fn collect(&self, out: &mut Values) -> Result<(), CollectError> {
        let Some(sample) = self.source.latest() else {
            return Err(CollectError::NoReading {
                source_name: "tegrastats",
            });
        };
        let age = sample.at.elapsed();
        if age > self.stale_after {
            return Err(CollectError::Stale {
                source_name: "tegrastats",
                age_secs: age.as_secs_f64(),
                limit_secs: self.stale_after.as_secs_f64(),
            });
        }
        if sample.model == self.model {
            out.extend(sample.reading.values.iter().map(|(k, v)| (k.clone(), *v)));
        } else {
            // The device type changed since this line was parsed: read it with our rules.
            let reading = jetson::read_line(self.model, &sample.raw)
                .map_err(|e| CollectError::Failed(e.to_string()))?;
            out.extend(reading.values);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tegrastats::source::{SourceSpec, TegraSource};
    use std::time::Instant;

    #[tokio::test]
    async fn values_then_stale_after_three_intervals() {
        let path = std::env::temp_dir().join(format!("em-device-{}.log", std::process::id()));
        std::fs::write(&path, "RAM 2690/6854MB (lfb 6x1MB)\n").unwrap();
        let interval = Duration::from_millis(50);
        // Replaying every 10 s: one line now, then nothing for longer than three intervals.
        let mut source = TegraSource::start(
            SourceSpec::Replay {
                path: path.clone(),
                interval: Duration::from_secs(10),
            },
            Model::Orin,
        );
        let collector = device_collector(DeviceType::Jetson, source.handle(), interval);
        assert_eq!(collector.name(), "JetsonOrinCollector");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Values::new();
        while collector.collect(&mut out).is_err() {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(out["jetson_ram_used_mb"], 2690.0);
        tokio::time::sleep(interval * 4).await;
        let mut out = Values::new();
        let err = collector.collect(&mut out).unwrap_err();
        assert!(matches!(err, CollectError::Stale { .. }), "{err:?}");
        assert!(out.is_empty());
        source.stop().await;
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn every_device_type_has_a_collector_name() {
        let names: Vec<_> = DeviceType::ALL
            .iter()
            .map(|k| model_for(*k).collector_name())
            .collect();
        assert_eq!(
            names,
            [
                "JetsonOrinCollector",
                "JetsonXavierCollector",
                "JetsonNanoCollector",
                "JetsonOrinCollector"
            ]
        );
    }
}
