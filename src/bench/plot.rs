//! A hand-written SVG with two line charts against the agent count: throughput (ops/s) and
//! p99 latency (ms), one line per scenario.

use std::fmt::Write as _;

use super::report::RunResult;

const WIDTH: f64 = 780.0;
const PLOT_LEFT: f64 = 90.0;
const PLOT_RIGHT: f64 = 590.0;
const PLOT_HEIGHT: f64 = 240.0;
/// Top edges of the two plot areas.
const PANEL_TOPS: [f64; 2] = [80.0, 420.0];
const HEIGHT: f64 = 720.0;
const LEGEND_LEFT: f64 = 615.0;

/// Line colors, one per scenario in order of first appearance.
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// A mapping from data values to the fraction 0..=1 of an axis.
#[derive(Debug, Clone, Copy)]
enum Scale {
    /// From 0 to `max`.
    Linear { max: f64 },
    /// From 10^`low` to 10^`high`.
    Log10 { low: i32, high: i32 },
    /// From 2^`low` to 2^`high`; used for the agent counts.
    Log2 { low: f64, high: f64 },
}

impl Scale {
    /// Builds a linear scale from 0 to a round number at or above `max`, and its ticks.
    fn linear(max: f64) -> (Scale, Vec<f64>) {
        let max = if max > 0.0 { max } else { 1.0 };
        let raw_step = max / 5.0;
        let magnitude = 10f64.powf(raw_step.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|factor| factor * magnitude)
            .find(|step| *step >= raw_step)
            .unwrap_or(10.0 * magnitude);
        let count = (max / step).ceil() as usize;
        let ticks = (0..=count).map(|index| index as f64 * step).collect();
        (
            Scale::Linear {
                max: count as f64 * step,
            },
            ticks,
        )
    }

    /// Builds a log10 scale over the whole decades around `min..=max`, and its ticks.
    fn log10(min: f64, max: f64) -> (Scale, Vec<f64>) {
        let low = min.max(1e-3).log10().floor() as i32;
        let high = (max.max(1e-3).log10().ceil() as i32).max(low + 1);
        let mut ticks = Vec::new();
        for exponent in low..=high {
            let decade = 10f64.powi(exponent);
            ticks.push(decade);
            // Intermediate ticks keep a chart that spans one or two decades readable.
            if high - low <= 2 && exponent < high {
                ticks.push(2.0 * decade);
                ticks.push(5.0 * decade);
            }
        }
        (Scale::Log10 { low, high }, ticks)
    }

    /// Returns where `value` lies on the axis, from 0 (start) to 1 (end).
    fn fraction(self, value: f64) -> f64 {
        match self {
            Scale::Linear { max } => value / max,
            Scale::Log10 { low, high } => {
                let position = value.max(10f64.powi(low)).log10();
                (position - f64::from(low)) / f64::from(high - low)
            }
            Scale::Log2 { low, high } if high > low => (value.log2() - low) / (high - low),
            Scale::Log2 { .. } => 0.5,
        }
    }
}

/// One scenario's points, sorted by agent count.
struct Series {
    scenario: &'static str,
    points: Vec<(f64, f64)>,
}

/// Collects one series per scenario from the runs that completed, with `value` of each run.
fn series(results: &[RunResult], value: impl Fn(&RunResult) -> Option<f64>) -> Vec<Series> {
    let mut all: Vec<Series> = Vec::new();
    for result in results {
        if result.skipped.is_some() || result.error.is_some() {
            continue;
        }
        let Some(y) = value(result) else { continue };
        let point = (result.agents as f64, y);
        match all
            .iter_mut()
            .find(|series| series.scenario == result.scenario)
        {
            Some(series) => series.points.push(point),
            None => all.push(Series {
                scenario: result.scenario,
                points: vec![point],
            }),
        }
    }
    for series in &mut all {
        series.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    all
}

/// Escapes text for an SVG text node or attribute.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Formats an axis tick value without needless digits.
fn tick_label(value: f64) -> String {
    if value >= 1.0 && value.fract() == 0.0 {
        format!("{value:.0}")
    } else if value >= 0.1 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

/// Renders the SVG document. `target` names the server settings and `ops` the operations per
/// agent, both shown under the title.
pub fn render(results: &[RunResult], target: &str, ops: u64) -> String {
    let mut agent_counts: Vec<f64> = results.iter().map(|result| result.agents as f64).collect();
    agent_counts.sort_by(f64::total_cmp);
    agent_counts.dedup();
    let x_scale = Scale::Log2 {
        low: agent_counts.first().copied().unwrap_or(1.0).log2(),
        high: agent_counts.last().copied().unwrap_or(1.0).log2(),
    };

    // Each scenario keeps its color in both charts, even where one chart lacks its line.
    let mut scenarios: Vec<&'static str> = Vec::new();
    for result in results {
        if !scenarios.contains(&result.scenario) {
            scenarios.push(result.scenario);
        }
    }
    let throughput = series(results, |result| Some(result.ops_per_second));
    let p99 = series(results, |result| {
        result.latency.map(|latency| latency.p99_ms)
    });

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="16">brainstorm bench</text>"#,
        WIDTH / 2.0
    );
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="44" text-anchor="middle" fill="#555">{ops} ops per agent; server: {}</text>"##,
        WIDTH / 2.0,
        escape(target)
    );

    let max_throughput = throughput
        .iter()
        .flat_map(|series| series.points.iter().map(|point| point.1))
        .fold(0.0, f64::max);
    let (throughput_scale, throughput_ticks) = Scale::linear(max_throughput);
    let latencies = p99
        .iter()
        .flat_map(|series| series.points.iter().map(|point| point.1));
    let (low, high) = latencies.fold((f64::INFINITY, 0.0f64), |(low, high), value| {
        (low.min(value), high.max(value))
    });
    let (latency_scale, latency_ticks) = if high > 0.0 {
        Scale::log10(low, high)
    } else {
        Scale::log10(1.0, 10.0)
    };

    let panels = [
        (
            "Throughput",
            "ops/s",
            &throughput,
            throughput_scale,
            throughput_ticks,
        ),
        (
            "p99 latency",
            "p99 latency (ms), log scale",
            &p99,
            latency_scale,
            latency_ticks,
        ),
    ];
    for ((title, y_label, data, y_scale, y_ticks), top) in panels.into_iter().zip(PANEL_TOPS) {
        let chart = Chart {
            top,
            x_scale,
            y_scale,
            scenarios: &scenarios,
        };
        chart.draw(&mut svg, title, y_label, &agent_counts, &y_ticks, data);
    }
    svg.push_str("</svg>\n");
    svg
}

/// The geometry of one chart panel.
struct Chart<'a> {
    top: f64,
    x_scale: Scale,
    y_scale: Scale,
    /// Every scenario in the results, in order; a scenario's index picks its color.
    scenarios: &'a [&'static str],
}

impl Chart<'_> {
    fn x(&self, value: f64) -> f64 {
        PLOT_LEFT + self.x_scale.fraction(value) * (PLOT_RIGHT - PLOT_LEFT)
    }

    fn y(&self, value: f64) -> f64 {
        self.top + PLOT_HEIGHT - self.y_scale.fraction(value) * PLOT_HEIGHT
    }

    /// Draws the title, grid, axes, tick labels, lines with point markers, and the legend.
    fn draw(
        &self,
        svg: &mut String,
        title: &str,
        y_label: &str,
        x_ticks: &[f64],
        y_ticks: &[f64],
        data: &[Series],
    ) {
        let bottom = self.top + PLOT_HEIGHT;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="14">{title}</text>"#,
            (PLOT_LEFT + PLOT_RIGHT) / 2.0,
            self.top - 12.0
        );
        for &tick in y_ticks {
            let y = self.y(tick);
            let _ = writeln!(
                svg,
                r##"<line x1="{PLOT_LEFT}" y1="{y:.1}" x2="{PLOT_RIGHT}" y2="{y:.1}" stroke="#e4e4e4"/>"##
            );
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                PLOT_LEFT - 6.0,
                y + 4.0,
                tick_label(tick)
            );
        }
        for &tick in x_ticks {
            let x = self.x(tick);
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{bottom}" stroke="#e4e4e4"/>"##,
                self.top
            );
            let _ = writeln!(
                svg,
                r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
                bottom + 16.0,
                tick_label(tick)
            );
        }
        let _ = writeln!(
            svg,
            r#"<polyline points="{PLOT_LEFT},{} {PLOT_LEFT},{bottom} {PLOT_RIGHT},{bottom}" fill="none" stroke="black"/>"#,
            self.top
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">agents (P), log scale</text>"#,
            (PLOT_LEFT + PLOT_RIGHT) / 2.0,
            bottom + 36.0
        );
        let _ = writeln!(
            svg,
            r#"<text transform="translate({}, {}) rotate(-90)" text-anchor="middle">{}</text>"#,
            PLOT_LEFT - 58.0,
            self.top + PLOT_HEIGHT / 2.0,
            escape(y_label)
        );
        if data.is_empty() {
            let _ = writeln!(
                svg,
                r##"<text x="{}" y="{}" text-anchor="middle" fill="#888">no completed runs</text>"##,
                (PLOT_LEFT + PLOT_RIGHT) / 2.0,
                self.top + PLOT_HEIGHT / 2.0
            );
        }
        for (index, series) in data.iter().enumerate() {
            let color_index = self
                .scenarios
                .iter()
                .position(|scenario| *scenario == series.scenario)
                .unwrap_or(index);
            let color = COLORS[color_index % COLORS.len()];
            let points: Vec<String> = series
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", self.x(x), self.y(y)))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                points.join(" ")
            );
            for &(x, y) in &series.points {
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                    self.x(x),
                    self.y(y)
                );
            }
            let legend_y = self.top + 10.0 + index as f64 * 20.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{LEGEND_LEFT}" y1="{legend_y}" x2="{}" y2="{legend_y}" stroke="{color}" stroke-width="2"/>"#,
                LEGEND_LEFT + 20.0
            );
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}">{}</text>"#,
                LEGEND_LEFT + 26.0,
                legend_y + 4.0,
                escape(series.scenario)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_scale_ends_on_a_round_tick() {
        let (scale, ticks) = Scale::linear(930.0);
        assert_eq!(ticks, vec![0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]);
        assert_eq!(scale.fraction(500.0), 0.5);
    }

    #[test]
    fn log_scale_covers_whole_decades() {
        let (scale, ticks) = Scale::log10(0.7, 42.0);
        assert_eq!(ticks.first(), Some(&0.1));
        assert_eq!(ticks.last(), Some(&100.0));
        assert_eq!(scale.fraction(100.0), 1.0);
        assert!((scale.fraction(1.0) - 1.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn plot_has_one_line_per_scenario_and_panel() {
        let mut result = RunResult::skipped("counter-atomic", 2, 10, String::new());
        result.skipped = None;
        result.ops_per_second = 100.0;
        let mut larger = result.clone();
        larger.agents = 4;
        let svg = render(&[result, larger], "a & b", 5);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("server: a &amp; b"));
        // Throughput has a line; p99 has no latency samples, so only the throughput panel
        // draws one.
        assert_eq!(svg.matches("stroke-width=\"2\"/>").count(), 2);
        assert!(svg.contains("no completed runs"));
    }
}
