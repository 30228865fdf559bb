//! Captures `tracing` events as `field=value` strings, for telemetry assertions.
//!
//! One global subscriber is installed for the whole test binary and routes each event to the capture
//! buffer of the thread that emitted it. (Per-thread `with_default` subscribers miss events: tracing
//! caches a callsite's interest globally, and a test thread without a subscriber can cache "never".)

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::Once;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

thread_local! {
    static SINK: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

struct Capture;

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={}", field.name(), value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        let _ = write!(self.0, " {}={}", field.name(), value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        let _ = write!(self.0, " {}={}", field.name(), value);
    }
}

impl<S> Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    /// Spans are captured when they close, as `SPAN <target> <name>` and their fields, including those
    /// recorded after the span was made.
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut line = Line(format!("SPAN {} {}", attrs.metadata().target(), attrs.metadata().name()));
            attrs.record(&mut line);
            span.extensions_mut().insert(line);
        }
    }

    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(line) = span.extensions_mut().get_mut::<Line>() {
                values.record(line);
            }
        }
    }

    fn on_close(&self, id: tracing::span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(line) = span.extensions_mut().remove::<Line>() else { return };
        SINK.with(|sink| {
            if let Some(lines) = sink.borrow_mut().as_mut() {
                lines.push(line.0);
            }
        });
    }

    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        SINK.with(|sink| {
            if let Some(lines) = sink.borrow_mut().as_mut() {
                let mut line = Line(format!("{} {}", event.metadata().level(), event.metadata().target()));
                event.record(&mut line);
                lines.push(line.0);
            }
        });
    }
}

/// Runs `f` and returns what it returned with every event it emitted on this thread.
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture))
            .expect("no other global subscriber in the tests");
    });
    SINK.with(|sink| *sink.borrow_mut() = Some(Vec::new()));
    let result = f();
    let events = SINK.with(|sink| sink.borrow_mut().take().unwrap_or_default());
    (result, events)
}

/// The value of the field `name` in a captured line (`name=value`; the values asserted on have no spaces).
pub fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(' ').find_map(|token| token.strip_prefix(name)?.strip_prefix('='))
}

/// The last search span among `events`.
pub fn search_span(events: &[String]) -> Option<&str> {
    events.iter().rev().find(|e| e.starts_with("SPAN diesel_vector::search search")).map(String::as_str)
}

/// The path of the last search span among `events`.
pub fn search_path(events: &[String]) -> Option<&str> {
    field(search_span(events)?, "path")
}
