//! The console contract: text out to the screen, lines in from the keyboard.

use crate::contract;
use channels::ExString;

contract! {
    /// A console: write text, read lines until the input ends.
    pub contract Console {
        /// Show this text.
        in message Write(ExString);
        /// Ask for the next input line.
        in message ReadLine;
        /// The client is done.
        in message Quit;
        /// The text is shown.
        out message Written;
        /// The next input line (without its newline).
        out message Line(ExString);
        /// There is no more input.
        out message EndOfInput;

        /// Waiting for a request.
        initial state Ready { Write -> Writing, ReadLine -> Reading, Quit -> Done }
        /// A write is being acknowledged.
        state Writing { Written -> Ready }
        /// A line is being read.
        state Reading { Line -> Ready, EndOfInput -> Done }
        /// The conversation is over.
        terminal state Done;
    }
}
