//! Incremental Server-Sent Events framing (WHATWG event-stream rules).
//!
//! Bytes arrive at arbitrary boundaries; complete lines are decoded and applied as they
//! appear, and only an unfinished line is buffered. Line ends are found with `memchr`, and
//! the field buffers are reused, so steady-state parsing does not allocate per byte or line.
//! The common event, one `data` line and its blank line within one read, is handed out
//! borrowing the read's bytes, without being collected first.

use std::borrow::Cow;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One complete event, borrowing the parser's buffers (valid during the callback only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEventRef<'a> {
    /// The `event:` field; `None` for the default (`message`) type.
    pub event: Option<&'a str>,
    /// The `data:` lines joined with `\n`.
    pub data: &'a str,
    /// The last event ID seen on the stream (it persists across events, as WHATWG says).
    pub id: Option<&'a str>,
    /// The `retry:` field of this event, when it had a valid one.
    pub retry: Option<u64>,
}

/// An owned [`SseEventRef`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
    pub id: Option<String>,
    pub retry: Option<u64>,
}

impl From<SseEventRef<'_>> for SseEvent {
    fn from(e: SseEventRef<'_>) -> Self {
        Self {
            event: e.event.map(str::to_owned),
            data: e.data.to_owned(),
            id: e.id.map(str::to_owned),
            retry: e.retry,
        }
    }
}

/// Field buffers of the event being assembled.
#[derive(Debug, Default, Clone)]
struct EventBuilder {
    data: String,
    event: String,
    last_id: Option<String>,
    retry: Option<u64>,
}

impl EventBuilder {
    fn line(&mut self, raw: &[u8], on_event: &mut impl FnMut(SseEventRef<'_>)) {
        if raw.is_empty() {
            self.dispatch(on_event);
            return;
        }
        // Valid UTF-8 (the norm) is borrowed as is; only invalid bytes take the lossy path.
        let line: Cow<'_, str> = match std::str::from_utf8(raw) {
            Ok(line) => Cow::Borrowed(line),
            Err(_) => String::from_utf8_lossy(raw),
        };
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            "id" if !value.contains('\0') => {
                let id = self.last_id.get_or_insert_with(String::new);
                id.clear();
                id.push_str(value);
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // Too many digits for u64: ignored like any other invalid retry value.
                if let Ok(ms) = value.parse() {
                    self.retry = Some(ms);
                }
            }
            _ => {}
        }
    }

    /// A `data` line (`value`, UTF-8) directly followed by the blank line that ends its
    /// event, when no `data` line came before: the event is emitted borrowing `value`, without
    /// collecting it first. Same as [`EventBuilder::line`] then [`EventBuilder::dispatch`].
    fn lone_data(&mut self, value: &str, on_event: &mut impl FnMut(SseEventRef<'_>)) {
        debug_assert!(self.data.is_empty());
        on_event(SseEventRef {
            event: (!self.event.is_empty()).then_some(self.event.as_str()),
            data: value,
            id: self.last_id.as_deref(),
            retry: self.retry,
        });
        self.event.clear();
        self.retry = None;
    }

    /// Blank line: emit the event if any `data` line was seen, then reset per-event fields.
    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEventRef<'_>)) {
        if !self.data.is_empty() {
            self.data.pop(); // the trailing '\n' every data line appended
            on_event(SseEventRef {
                event: (!self.event.is_empty()).then_some(self.event.as_str()),
                data: &self.data,
                id: self.last_id.as_deref(),
                retry: self.retry,
            });
        }
        self.data.clear();
        self.event.clear();
        self.retry = None;
    }
}

/// Where the end of the next line is within a byte slice.
struct LineEnd {
    /// Index one past the line's last content byte.
    end: usize,
    /// Index where the next line starts.
    next: usize,
    /// The line ended with `\r` as the very last byte: a `\n` may follow in the next read.
    cr_at_edge: bool,
}

fn find_line_end(bytes: &[u8]) -> Option<LineEnd> {
    let i = memchr::memchr2(b'\n', b'\r', bytes)?;
    if bytes[i] == b'\n' {
        return Some(LineEnd {
            end: i,
            next: i + 1,
            cr_at_edge: false,
        });
    }
    Some(match bytes.get(i + 1) {
        Some(b'\n') => LineEnd {
            end: i,
            next: i + 2,
            cr_at_edge: false,
        },
        Some(_) => LineEnd {
            end: i,
            next: i + 1,
            cr_at_edge: false,
        },
        None => LineEnd {
            end: i,
            next: i + 1,
            cr_at_edge: true,
        },
    })
}

/// Incremental SSE parser: feed bytes at any boundary, receive complete events.
#[derive(Debug, Clone)]
pub struct SseParser {
    /// Bytes of an unfinished line (or of a possible BOM at stream start).
    partial: Vec<u8>,
    builder: EventBuilder,
    /// The previous read ended in `\r`; a `\n` starting this read belongs to that line end.
    skip_lf: bool,
    /// Nothing decided yet about a leading byte-order mark.
    at_start: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        Self {
            partial: Vec::new(),
            builder: EventBuilder::default(),
            skip_lf: false,
            at_start: true,
        }
    }
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one read; `on_event` is called for every event it completes, in order.
    pub fn feed_with(&mut self, input: &[u8], mut on_event: impl FnMut(SseEventRef<'_>)) {
        let mut input = input;
        if self.skip_lf && !input.is_empty() {
            self.skip_lf = false;
            if input[0] == b'\n' {
                input = &input[1..];
            }
        }
        if self.at_start {
            self.partial.extend_from_slice(input);
            if self.partial.len() < BOM.len() && BOM.starts_with(&self.partial) {
                return; // could still become a BOM
            }
            self.at_start = false;
            if self.partial.starts_with(BOM) {
                self.partial.drain(..BOM.len());
            }
            let buffered = std::mem::take(&mut self.partial);
            let consumed = self.lines(&buffered, &mut on_event);
            self.partial = buffered;
            self.partial.drain(..consumed);
            return;
        }
        if !self.partial.is_empty() {
            // Complete the buffered line with this read's first line end.
            let Some(le) = find_line_end(input) else {
                self.partial.extend_from_slice(input);
                return;
            };
            self.partial.extend_from_slice(&input[..le.end]);
            self.builder.line(&self.partial, &mut on_event);
            self.partial.clear();
            self.skip_lf = le.cr_at_edge;
            input = &input[le.next..];
        }
        let consumed = self.lines(input, &mut on_event);
        self.partial.extend_from_slice(&input[consumed..]);
    }

    /// Apply every complete line in `bytes`; returns how many bytes were consumed.
    fn lines(&mut self, bytes: &[u8], on_event: &mut impl FnMut(SseEventRef<'_>)) -> usize {
        let mut pos = 0;
        while let Some(le) = find_line_end(&bytes[pos..]) {
            let line = &bytes[pos..pos + le.end];
            if let Some(next) = self.lone_data(line, &bytes[pos + le.next..], on_event) {
                pos += le.next + next;
                continue;
            }
            self.builder.line(line, on_event);
            self.skip_lf = le.cr_at_edge;
            pos += le.next;
        }
        pos
    }

    /// The common event, one `data` line and a blank line, emitted straight from the read:
    /// `line` is a `data` line, the first of its event, and `rest` (what follows its line end)
    /// starts with the blank line. Returns how much of `rest` that blank line took.
    #[inline]
    fn lone_data(
        &mut self,
        line: &[u8],
        rest: &[u8],
        on_event: &mut impl FnMut(SseEventRef<'_>),
    ) -> Option<usize> {
        let value = line.strip_prefix(b"data:")?;
        if !matches!(rest.first(), Some(b'\n' | b'\r')) || !self.builder.data.is_empty() {
            return None;
        }
        let blank = find_line_end(rest)?;
        // Invalid UTF-8 takes the general (lossy) path.
        let value = std::str::from_utf8(value).ok()?;
        self.builder
            .lone_data(value.strip_prefix(' ').unwrap_or(value), on_event);
        self.skip_lf = blank.cr_at_edge;
        Some(blank.next)
    }

    /// End of stream: an unterminated last line is applied and a pending event with data is
    /// dispatched. The parser is then reset for a new stream.
    pub fn finish_with(&mut self, mut on_event: impl FnMut(SseEventRef<'_>)) {
        let partial = std::mem::take(&mut self.partial);
        let at_bom_prefix = self.at_start && BOM.starts_with(&partial);
        if !partial.is_empty() && !at_bom_prefix {
            let line = if self.at_start {
                partial.strip_prefix(BOM).unwrap_or(&partial)
            } else {
                &partial
            };
            self.builder.line(line, &mut on_event);
        }
        self.builder.dispatch(&mut on_event);
        *self = Self::default();
    }

    /// Feed one read and collect the events it completes.
    pub fn feed(&mut self, input: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        self.feed_with(input, |e| events.push(e.into()));
        events
    }

    /// End of stream, collecting any final event.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        self.finish_with(|e| events.push(e.into()));
        events
    }
}
