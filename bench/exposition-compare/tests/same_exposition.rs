//! The three variants expose the same families and samples (order and number spelling aside).

use exposition_compare::client::Client;
use exposition_compare::handwritten::Handwritten;
use exposition_compare::parse::{parse, Exposition};
use exposition_compare::prom::Prom;
use exposition_compare::{snapshot, Render};

fn render_cycles(r: &mut dyn Render, cycles: &[u64]) -> Vec<Exposition> {
    let mut values = vec![0.0; snapshot::NAMES.len()];
    cycles
        .iter()
        .map(|&c| {
            snapshot::values_at(c, &mut values);
            let body = r.render(&values);
            parse(&body).unwrap_or_else(|e| panic!("{} body: {e}\n{body}", r.name()))
        })
        .collect()
}

/// prometheus-client ends every HELP text with a full stop of its own; nothing else differs.
fn without_added_full_stop(mut e: Exposition) -> Exposition {
    for family in e.values_mut() {
        if let Some(help) = &mut family.help {
            let trimmed = help
                .strip_suffix('.')
                .expect("prometheus-client adds a full stop");
            *help = trimmed.to_string();
        }
    }
    e
}

#[test]
fn all_variants_expose_the_same_families_and_samples() {
    // The first render fills caches; later ones must follow the values.
    let cycles = [0, 1, 2, 57, 1_000];
    let a = render_cycles(&mut Handwritten::new(), &cycles);
    let b = render_cycles(&mut Prom::new(), &cycles);
    let c = render_cycles(&mut Client::new(), &cycles);
    for (i, ((a, b), c)) in a.into_iter().zip(b).zip(c).enumerate() {
        assert_eq!(a.len(), 76, "cycle {}", cycles[i]);
        for family in a.values() {
            assert_eq!(family.kind.as_deref(), Some("gauge"));
            assert!(family.help.as_deref().is_some_and(|h| !h.is_empty()));
            assert_eq!(family.samples.len(), 1);
            for (_, labels) in family.samples.keys() {
                assert_eq!(
                    labels,
                    &[
                        ("device_type".to_string(), snapshot::DEVICE_TYPE.to_string()),
                        ("hostname".to_string(), snapshot::HOSTNAME.to_string()),
                    ]
                );
            }
        }
        assert_eq!(a, b, "prometheus differs at cycle {}", cycles[i]);
        assert_eq!(
            a,
            without_added_full_stop(c),
            "prometheus-client differs at cycle {}",
            cycles[i]
        );
    }
}

#[test]
fn values_change_each_cycle() {
    let mut values = vec![0.0; snapshot::NAMES.len()];
    let mut previous = vec![f64::NAN; snapshot::NAMES.len()];
    for cycle in 0..50 {
        snapshot::values_at(cycle, &mut values);
        assert!(
            values.iter().zip(&previous).all(|(v, p)| v != p),
            "cycle {cycle}"
        );
        previous.clone_from(&values);
    }
}
