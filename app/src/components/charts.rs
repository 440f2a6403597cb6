//! Small charts drawn as SVG on the server, so they read without JavaScript. Each bar carries a
//! `<title>` with its numbers (a tooltip, and what screen readers announce), and each chart says in
//! words when it has nothing to show.

use leptos::prelude::*;

const W: f64 = 720.0;
const H: f64 = 180.0;
/// Room for the axis labels under the bars.
const AXIS: f64 = 18.0;
/// Fill classes of the stacked spend series, in order (then repeated).
const SERIES: &[&str] = &[
    "fill-sky-600",
    "fill-amber-500",
    "fill-emerald-600",
    "fill-violet-600",
    "fill-rose-600",
    "fill-slate-500",
];
/// The same colours as background classes, for the legend.
const SWATCH: &[&str] =
    &["bg-sky-600", "bg-amber-500", "bg-emerald-600", "bg-violet-600", "bg-rose-600", "bg-slate-500"];

fn empty(message: &'static str) -> AnyView {
    view! { <p class="rounded border border-dashed border-slate-300 p-6 text-center text-sm text-slate-600">{message}</p> }
        .into_any()
}

/// The left edge and width of the bar in slot `i` of `n`.
fn bar_x(i: usize, n: usize) -> (f64, f64) {
    let slot = W / n.max(1) as f64;
    (i as f64 * slot + slot * 0.1, slot * 0.8)
}

/// One point in time of [`BarLineChart`]: a bar, and optionally a point of the line.
#[derive(Clone, Debug, PartialEq)]
pub struct BarPoint {
    pub label: String,
    pub bar: f64,
    pub line: Option<f64>,
    /// The tooltip.
    pub title: String,
}

/// Bars (e.g. requests per hour) with an optional line over them on its own scale (e.g. p95
/// latency). Shows `empty_message` instead when every bar is zero and there is no line.
#[component]
pub fn BarLineChart(
    points: Vec<BarPoint>,
    /// What the whole chart shows, for assistive technology.
    summary: String,
    empty_message: &'static str,
    #[prop(default = 6)] label_every: usize,
) -> impl IntoView {
    if points.iter().all(|p| p.bar == 0.0 && p.line.is_none()) {
        return empty(empty_message);
    }
    let n = points.len();
    let plot = H - AXIS;
    let max_bar = points.iter().map(|p| p.bar).fold(0.0, f64::max).max(1.0);
    let max_line = points.iter().filter_map(|p| p.line).fold(0.0, f64::max).max(1.0);
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let (x, w) = bar_x(i, n);
            p.line.map(|v| format!("{:.1},{:.1}", x + w / 2.0, plot - v / max_line * (plot - 4.0)))
        })
        .collect();
    view! {
        <svg viewBox=format!("0 0 {W} {H}") class="h-48 w-full" role="img" aria-label=summary preserveAspectRatio="none">
            <line x1="0" y1=plot x2=W y2=plot class="stroke-slate-300" stroke-width="1" />
            {points
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    let (x, w) = bar_x(i, n);
                    let h = p.bar / max_bar * (plot - 4.0);
                    // Labels near the right edge would be cut off.
                    let label = (i % label_every.max(1) == 0 && x < W - 48.0).then(|| {
                        view! {
                            <text x=x y=H - 4.0 class="fill-slate-600 text-[10px]">{p.label.clone()}</text>
                        }
                    });
                    view! {
                        <g>
                            <rect x=x y=plot - h width=w height=h.max(0.0) class="fill-sky-600">
                                <title>{p.title}</title>
                            </rect>
                            {label}
                        </g>
                    }
                })
                .collect_view()}
            {(line.len() > 1).then(|| view! {
                <polyline points=line.join(" ") fill="none" class="stroke-amber-500" stroke-width="2" />
            })}
        </svg>
    }
    .into_any()
}

/// One series of a [`StackedChart`].
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
    /// The legend's text after the name (e.g. the series' total).
    pub total: String,
}

/// Stacked bars per slot (e.g. spend per provider per day) with a legend.
#[component]
pub fn StackedChart(
    labels: Vec<String>,
    series: Vec<Series>,
    summary: String,
    empty_message: &'static str,
    /// Formats one value for a tooltip.
    format: fn(f64) -> String,
    #[prop(default = 5)] label_every: usize,
) -> impl IntoView {
    if series.iter().all(|s| s.values.iter().all(|v| *v == 0.0)) {
        return empty(empty_message);
    }
    let n = labels.len();
    let plot = H - AXIS;
    let max = (0..n)
        .map(|i| series.iter().map(|s| s.values.get(i).copied().unwrap_or(0.0)).sum::<f64>())
        .fold(0.0, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    let mut rects = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let (x, w) = bar_x(i, n);
        let mut y = plot;
        for (k, s) in series.iter().enumerate() {
            let v = s.values.get(i).copied().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let h = v / max * (plot - 4.0);
            y -= h;
            let title = format!("{}: {} on {label}", s.name, format(v));
            rects.push(view! {
                <rect x=x y=y width=w height=h class=SERIES[k % SERIES.len()]><title>{title}</title></rect>
            });
        }
    }
    let ticks: Vec<_> = labels
        .iter()
        .enumerate()
        .filter(|(i, _)| i % label_every.max(1) == 0 && bar_x(*i, n).0 < W - 48.0)
        .map(|(i, l)| {
            let (x, _) = bar_x(i, n);
            view! { <text x=x y=H - 4.0 class="fill-slate-600 text-[10px]">{l.clone()}</text> }
        })
        .collect_view();
    view! {
        <svg viewBox=format!("0 0 {W} {H}") class="h-48 w-full" role="img" aria-label=summary preserveAspectRatio="none">
            <line x1="0" y1=plot x2=W y2=plot class="stroke-slate-300" stroke-width="1" />
            {rects}
            {ticks}
        </svg>
        <ul class="flex flex-wrap gap-4 text-sm" aria-label="Legend">
            {series
                .into_iter()
                .enumerate()
                .map(|(k, s)| view! {
                    <li class="flex items-center gap-2">
                        <span class=format!("inline-block h-3 w-3 rounded-sm {}", SWATCH[k % SWATCH.len()])></span>
                        {s.name} " " <span class="text-slate-600">{s.total}</span>
                    </li>
                })
                .collect_view()}
        </ul>
    }
    .into_any()
}
