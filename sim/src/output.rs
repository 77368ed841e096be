//! What a command printed, and its exit status: the result every command and program
//! gives back, whoever runs it.

/// What a command printed, and its exit status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit status.
    pub exit_code: i32,
}

impl CommandOutput {
    /// Standard output only, exit status 0.
    pub fn out(text: impl Into<String>) -> CommandOutput {
        CommandOutput {
            stdout: text.into(),
            ..Default::default()
        }
    }

    /// Standard error only, with an exit status.
    pub fn err(text: impl Into<String>, exit_code: i32) -> CommandOutput {
        CommandOutput {
            stderr: text.into(),
            exit_code,
            ..Default::default()
        }
    }
}
