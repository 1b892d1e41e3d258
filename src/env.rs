//! Settings from the environment. Each program (the service, the sandbox) lists its
//! variables once, as a table of (name, default, meaning): the code reads them through
//! that table, `--help` prints it and the README shows it (a test keeps the README's
//! tables equal to these), so the three cannot drift. One reader collects every problem,
//! so an operator fixes them all in one go.

use std::fmt;
use std::str::FromStr;

/// One environment variable.
#[derive(Clone, Copy, Debug)]
pub struct Var {
    pub name: &'static str,
    /// What applies while it is unset or blank.
    pub unset: Unset,
    /// What it is for, in the README's words (Markdown).
    pub meaning: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unset {
    /// This value, read as if it had been set.
    Default(&'static str),
    /// A value worked out from other settings, as described.
    Derived(&'static str),
    /// The program cannot run without it.
    Required,
    /// Nothing: what the variable turns on stays off.
    Off,
}

/// Where values come from: the process environment, or a map in tests.
type Lookup = Box<dyn Fn(&str) -> Option<String>>;

/// Reads variables through a lookup, collecting one line per problem instead of stopping
/// at the first.
pub struct Env {
    lookup: Lookup,
    problems: Vec<String>,
}

impl Env {
    /// The process environment (including `.env`, once it is loaded).
    pub fn process() -> Env {
        Env::new(|name| std::env::var(name).ok())
    }

    pub fn new(lookup: impl Fn(&str) -> Option<String> + 'static) -> Env {
        Env {
            lookup: Box::new(lookup),
            problems: Vec::new(),
        }
    }

    /// The value as set, untrimmed; blank counts as unset.
    fn raw(&self, var: &Var) -> Option<String> {
        (self.lookup)(var.name).filter(|value| !value.trim().is_empty())
    }

    /// The value, trimmed; `None` when unset or blank.
    pub fn get(&self, var: &Var) -> Option<String> {
        self.raw(var).map(|value| value.trim().to_owned())
    }

    /// The value, else the variable's default.
    pub fn text(&self, var: &Var) -> String {
        self.get(var).unwrap_or_else(|| default_of(var).to_owned())
    }

    /// The value parsed, else the default parsed. A value that does not parse or is not
    /// `valid` is reported as `complaint(name, value as set)` and gives the default
    /// meanwhile, so the settings that depend on it can still be checked.
    pub fn parse<T: FromStr>(
        &mut self,
        var: &Var,
        valid: impl Fn(&T) -> bool,
        complaint: impl FnOnce(&str, &str) -> String,
    ) -> T {
        self.parse_if_set(var, valid, complaint)
            .unwrap_or_else(|| match default_of(var).parse() {
                Ok(default) => default,
                Err(_) => panic!("the default of {} does not parse", var.name),
            })
    }

    /// [`Env::parse`] for a variable without a default value: `None` when it is unset
    /// or reported.
    pub fn parse_if_set<T: FromStr>(
        &mut self,
        var: &Var,
        valid: impl Fn(&T) -> bool,
        complaint: impl FnOnce(&str, &str) -> String,
    ) -> Option<T> {
        let raw = self.raw(var)?;
        match raw.trim().parse::<T>() {
            Ok(value) if valid(&value) => Some(value),
            _ => {
                self.report(complaint(var.name, &raw));
                None
            }
        }
    }

    /// A problem the reader cannot see by itself (a missing required variable, two
    /// settings that disagree).
    pub fn report(&mut self, problem: String) {
        self.problems.push(problem);
    }

    /// The settings read, unless there was any problem. `read` gives `None` only along
    /// with a problem it reported.
    pub fn finish<T>(self, read: Option<T>) -> Result<T, ConfigErrors> {
        match read {
            Some(value) if self.problems.is_empty() => Ok(value),
            _ => Err(ConfigErrors(self.problems)),
        }
    }
}

/// The default value of a variable the code reads with a default.
fn default_of(var: &Var) -> &'static str {
    match var.unset {
        Unset::Default(value) => value,
        _ => panic!("{} has no default value", var.name),
    }
}

/// All the problems found in the environment; printed one line each.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.0 {
            writeln!(f, "configuration error: {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The `--help` text of a table: each variable, its meaning and default, wrapped.
pub fn help(heading: &str, vars: &[Var]) -> String {
    const WIDTH: usize = 96;
    let column = vars.iter().map(|var| var.name.len()).max().unwrap_or(0) + 4;
    let mut help = heading.to_owned();
    for var in vars {
        let mut words: Vec<String> = var.meaning.split_whitespace().map(str::to_owned).collect();
        words.extend(match var.unset {
            Unset::Default(value) | Unset::Derived(value) => Some(format!("[default: {value}]")),
            Unset::Required => Some("[required]".to_owned()),
            Unset::Off => None,
        });
        let lines = wrap(&words, WIDTH - column);
        help.push_str(&format!("\n  {:<width$}", var.name, width = column - 2));
        help.push_str(&lines.join(&format!("\n{:column$}", "")));
    }
    help
}

/// Words in lines of at most `width` characters (a longer word alone).
fn wrap(words: &[String], width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in words {
        let line = lines.last_mut().expect("one line at least");
        if line.is_empty() {
            line.push_str(word);
        } else if line.chars().count() + 1 + word.chars().count() <= width {
            line.push(' ');
            line.push_str(word);
        } else {
            lines.push(word.to_owned());
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A variable's row in the README's table.
    fn readme_row(var: &Var) -> String {
        let default = match var.unset {
            Unset::Default(value) | Unset::Derived(value) => format!("`{value}`"),
            Unset::Required => "required".to_owned(),
            Unset::Off => "unset".to_owned(),
        };
        format!("| `{}` | {default} | {} |", var.name, var.meaning)
    }

    /// The rows of the README's tables whose header starts `| variable | default |`, one
    /// list per table, in the README's order.
    fn readme_tables() -> Vec<Vec<String>> {
        let readme = include_str!("../README.md");
        let mut tables = Vec::new();
        let mut lines = readme.lines();
        while let Some(line) = lines.next() {
            if line.starts_with("| variable | default |") {
                lines.next(); // |---|---|---|
                let rows = lines.by_ref().take_while(|line| line.starts_with('|'));
                tables.push(rows.map(str::to_owned).collect());
            }
        }
        tables
    }

    #[test]
    fn the_readme_shows_exactly_the_tables_the_code_reads() {
        let tables = readme_tables();
        for (table, vars) in tables
            .iter()
            .zip([crate::config::VARIABLES, crate::sandbox::VARIABLES])
        {
            let expected: Vec<String> = vars.iter().map(readme_row).collect();
            let only_readme: Vec<&String> =
                table.iter().filter(|row| !expected.contains(row)).collect();
            let only_code: Vec<&String> =
                expected.iter().filter(|row| !table.contains(row)).collect();
            assert!(
                table == &expected,
                "the README's table differs from the code's.\nREADME only: {only_readme:#?}\n\
                 code only: {only_code:#?}\nthe whole table should read:\n{}",
                expected.join("\n")
            );
        }
        assert_eq!(tables.len(), 2, "the service's and the sandbox's tables");
    }

    #[test]
    fn no_variable_is_listed_twice() {
        for vars in [crate::config::VARIABLES, crate::sandbox::VARIABLES] {
            let mut names: Vec<&str> = vars.iter().map(|var| var.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), vars.len(), "a variable is listed twice");
        }
    }

    const SHORT: Var = Var {
        name: "SHORT",
        unset: Unset::Default("7"),
        meaning: "a number",
    };
    const LONGER_NAME: Var = Var {
        name: "LONGER_NAME",
        unset: Unset::Off,
        meaning: "words words words words words words words words words words words words \
                  words words words words words words words words words words words",
    };

    #[test]
    fn help_aligns_meanings_and_wraps_them_under_themselves() {
        let help = help("Environment:", &[SHORT, LONGER_NAME]);
        let lines: Vec<&str> = help.lines().collect();
        assert_eq!(lines[0], "Environment:");
        assert_eq!(lines[1], "  SHORT        a number [default: 7]");
        assert!(lines[2].starts_with("  LONGER_NAME  words words"), "{help}");
        assert!(lines[3].starts_with(&format!("{:15}words", "")), "{help}");
        assert!(
            lines.iter().all(|line| line.chars().count() <= 96),
            "{help}"
        );
        assert_eq!(help.matches("words").count(), 23);
    }

    #[test]
    fn problems_are_collected_and_defaults_stand_in_meanwhile() {
        let mut env = Env::new(|name| match name {
            "SHORT" => Some(" x ".to_owned()),
            "LONGER_NAME" => Some("  ".to_owned()),
            _ => None,
        });
        let short: u32 = env.parse(&SHORT, |_| true, |name, raw| format!("{name}: {raw:?}"));
        assert_eq!(short, 7);
        assert_eq!(env.get(&LONGER_NAME), None, "blank is unset");
        env.report("another".to_owned());
        let errors = env.finish(Some(())).unwrap_err();
        assert_eq!(errors.0, ["SHORT: \" x \"", "another"]);
        assert_eq!(
            errors.to_string(),
            "configuration error: SHORT: \" x \"\nconfiguration error: another\n"
        );
    }
}
