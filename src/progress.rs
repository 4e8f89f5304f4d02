//! How long library calls report to their caller. The library never prints: a workflow sends
//! [`Event`]s to a [`Progress`] the caller gives it, and the CLI renders them (a bar on stderr, a line
//! per skipped file). `()` ignores them, and any `FnMut(Event)` is a `Progress`.

/// What a long call has to say.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// A phase of `total` items (photos, images, training steps) begins; `what` names them
    /// ("images", "epoch 3").
    Start { what: &'a str, total: usize },
    /// `done` of the current phase's items are finished; `status` is a short summary to show beside
    /// the count (the running loss and accuracy).
    Advance { done: usize, status: Option<String> },
    /// The current phase is over.
    Finish,
    /// An input was left out and the run goes on; the message names the file and the reason.
    Skipped(String),
    /// A one-line notice for the user (a re-initialised layer, a resumed run).
    Notice(String),
}

/// Receives a long call's [`Event`]s.
pub trait Progress {
    fn report(&mut self, event: Event);
}

/// Nothing shown.
impl Progress for () {
    fn report(&mut self, _: Event) {}
}

impl<F: FnMut(Event)> Progress for F {
    fn report(&mut self, event: Event) {
        self(event)
    }
}

/// Collects the skipped-file and notice messages of a call (for tests and for callers that summarise).
#[derive(Debug, Default)]
pub struct Messages {
    pub skipped: Vec<String>,
    pub notices: Vec<String>,
}

impl Progress for Messages {
    fn report(&mut self, event: Event) {
        match event {
            Event::Skipped(m) => self.skipped.push(m),
            Event::Notice(m) => self.notices.push(m),
            _ => {}
        }
    }
}
