//! Text made safe for one line of a log or a message: control characters
//! (CR, LF, ESC, …) written as escapes, so no value can forge a line.

/// `text` with its control characters written as escapes (`\n`, `\r`, `\u{1b}`).
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
