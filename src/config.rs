//! Driver configuration: the product brief's `[nvme]` table, with its defaults and the ranges
//! each value may take. Values come from the platform (module parameters, a config file); anything
//! outside its range is refused with an error naming the setting, never clamped silently.

use crate::orion::command::MAX_TAGGED_DEPTH;

/// The `[nvme]` settings the driver core acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Most controllers the driver binds (`controller_max_count`).
    pub controller_max_count: u32,
    /// Most namespaces per controller the driver exposes (`controller_max_namespaces`).
    pub controller_max_namespaces: u32,
    /// Most I/O queues per controller (`controller_max_queues`).
    pub controller_max_queues: u32,
    /// Largest I/O queue depth the driver will use (`controller_max_queue_depth`).
    pub controller_max_queue_depth: u32,
    /// I/O queues to ask for (`queue_count`); the controller and CPU count may grant fewer.
    pub queue_count: u32,
    /// Entries per I/O queue (`queue_depth`); CAP.MQES may lower it.
    pub queue_depth: u32,
    /// Polled I/O queues (no interrupt) for polled I/O, out of `queue_count` (`poll_queues`,
    /// a driver extension to the brief's table, as in the reference C driver).
    pub poll_queues: u32,
    /// Ask the controller to coalesce interrupts (`queue_interrupt_coalescing`).
    pub queue_interrupt_coalescing: bool,
    /// Aggregation time in 100 µs units (`queue_interrupt_coalescing_time`, NVMe Base 2.0
    /// §5.27.1.9 TIME).
    pub queue_interrupt_coalescing_time: u32,
    /// Aggregation threshold in completions (`queue_interrupt_coalescing_threshold`).
    pub queue_interrupt_coalescing_threshold: u32,
    /// Keep the volatile write cache enabled (`write_back_cache`).
    pub write_back_cache: bool,
    /// Let the driver manage power states (`power_management_enabled`).
    pub power_management_enabled: bool,
    /// Minimum time between power state changes, ms (`power_state_transition_delay`).
    pub power_state_transition_delay: u32,
    /// Watch the composite temperature (`thermal_monitoring_enabled`).
    pub thermal_monitoring_enabled: bool,
    /// Over-temperature threshold in degrees Celsius (`thermal_threshold`).
    pub thermal_threshold: u32,
}

impl Default for Config {
    /// The brief's defaults.
    fn default() -> Self {
        Self {
            controller_max_count: 16,
            controller_max_namespaces: 1024,
            controller_max_queues: 64,
            controller_max_queue_depth: 65536,
            queue_count: 8,
            queue_depth: 1024,
            poll_queues: 0,
            queue_interrupt_coalescing: true,
            queue_interrupt_coalescing_time: 100,
            queue_interrupt_coalescing_threshold: 4,
            write_back_cache: true,
            power_management_enabled: true,
            power_state_transition_delay: 1000,
            thermal_monitoring_enabled: true,
            thermal_threshold: 85,
        }
    }
}

/// A setting outside the range the driver and the spec allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting's name in the `[nvme]` table.
    pub name: &'static str,
    /// The value given.
    pub value: u32,
    /// Smallest allowed value.
    pub min: u32,
    /// Largest allowed value.
    pub max: u32,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} = {} is out of range ({}..={})",
            self.name, self.value, self.min, self.max
        )
    }
}

fn check(name: &'static str, value: u32, min: u32, max: u32) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError {
            name,
            value,
            min,
            max,
        })
    }
}

impl Config {
    /// Checks every setting against its range; the first one outside is the error.
    ///
    /// Ranges: queue IDs are 16-bit (at most 65535 I/O queues); queue depths are 2..=65536
    /// by the spec, and at most [`MAX_TAGGED_DEPTH`] here because command identifiers carry a
    /// generation count above the tag; coalescing time and threshold are 8-bit fields;
    /// temperatures are those a Kelvin u16 can hold and a drive can plausibly report.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check("controller_max_count", self.controller_max_count, 1, 1024)?;
        check(
            "controller_max_namespaces",
            self.controller_max_namespaces,
            1,
            1 << 20,
        )?;
        check(
            "controller_max_queues",
            self.controller_max_queues,
            1,
            65535,
        )?;
        check(
            "controller_max_queue_depth",
            self.controller_max_queue_depth,
            2,
            65536,
        )?;
        check(
            "queue_count",
            self.queue_count,
            1,
            self.controller_max_queues,
        )?;
        let depth_max = self.controller_max_queue_depth.min(MAX_TAGGED_DEPTH);
        check("queue_depth", self.queue_depth, 2, depth_max)?;
        check(
            "poll_queues",
            self.poll_queues,
            0,
            self.controller_max_queues,
        )?;
        check(
            "queue_interrupt_coalescing_time",
            self.queue_interrupt_coalescing_time,
            0,
            255,
        )?;
        check(
            "queue_interrupt_coalescing_threshold",
            self.queue_interrupt_coalescing_threshold,
            0,
            255,
        )?;
        check(
            "power_state_transition_delay",
            self.power_state_transition_delay,
            0,
            3_600_000,
        )?;
        check("thermal_threshold", self.thermal_threshold, 0, 200)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn absurd_values_name_the_setting() {
        let c = Config {
            queue_depth: 1_000_000,
            ..Config::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(e.name, "queue_depth");
        assert_eq!((e.min, e.max), (2, 4096));
        assert_eq!(
            format!("{e}"),
            "queue_depth = 1000000 is out of range (2..=4096)"
        );
        for (c, name) in [
            (
                Config {
                    queue_count: 0,
                    ..Config::default()
                },
                "queue_count",
            ),
            (
                Config {
                    queue_count: 65,
                    ..Config::default()
                },
                "queue_count",
            ),
            (
                Config {
                    queue_depth: 1,
                    ..Config::default()
                },
                "queue_depth",
            ),
            (
                Config {
                    poll_queues: 65,
                    ..Config::default()
                },
                "poll_queues",
            ),
            (
                Config {
                    controller_max_queues: 70000,
                    ..Config::default()
                },
                "controller_max_queues",
            ),
            (
                Config {
                    thermal_threshold: 300,
                    ..Config::default()
                },
                "thermal_threshold",
            ),
            (
                Config {
                    queue_interrupt_coalescing_time: 256,
                    ..Config::default()
                },
                "queue_interrupt_coalescing_time",
            ),
        ] {
            assert_eq!(c.validate().map_err(|e| e.name), Err(name));
        }
    }
}
