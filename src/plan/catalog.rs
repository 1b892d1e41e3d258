//! The partner's catalog: what each Stripe price sells in UChat, how new workspaces are
//! made, and what to do when a payment fails, a subscription ends or money goes back.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::facts::Overdue;

#[derive(Clone, Debug, PartialEq)]
pub struct Catalog {
    pub workspace: WorkspaceTemplate,
    pub policy: Policy,
    pub store: StoreOptions,
    prices: BTreeMap<String, Product>,
    /// The prices marked `public = true`, in the file's order: the storefront's.
    public: Vec<String>,
}

/// How the storefront sells: the `[store]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Checkout offers a field for promotion codes.
    pub allow_promotion_codes: bool,
    /// Stripe Tax computes the tax at checkout.
    pub automatic_tax: bool,
    /// Days of Stripe trial before a subscription's first payment; 0 for none.
    pub trial_days: u32,
    /// The most units of one price a checkout may buy.
    pub max_quantity: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            allow_promotion_codes: false,
            automatic_tax: false,
            trial_days: 0,
            max_quantity: 100,
        }
    }
}

/// What one unit of a Stripe price buys.
#[derive(Clone, Debug, PartialEq)]
pub enum Product {
    Plan(PlanPrice),
    Addon { addon: String, qty: u32 },
    Points(i64),
}

/// A price that sells a UChat plan.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanPrice {
    pub plan: String,
    /// Bought once (not by subscription): whether UChat renews it from partner credit.
    /// `false` lets the plan lapse at the end of its period.
    pub auto_renew: bool,
    /// UChat has no per-plan seats: each unit bought above the first adds one of this
    /// add-on. Without it, a quantity above 1 needs an operator.
    pub quantity_addon: Option<String>,
    /// A template (`GET /partner/templates`) installed into the workspace right after
    /// its create.
    pub template: Option<String>,
}

/// How the planner creates a workspace for a new buyer: the `[workspace]` table.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkspaceTemplate {
    /// `{name}` and `{email}` are filled in; see `Catalog::team_name`.
    pub team_name: String,
    pub require_email_verification: bool,
    pub trial_days: u32,
    /// A template for new workspaces; empty for none.
    pub template_ns: String,
    /// The Checkout custom field where a buyer may give an existing workspace id.
    pub id_field: String,
    /// Whether a workspace the buyer names is used only once UChat shows the buyer's
    /// email as its owner. Off for partners who set the id server-side.
    pub check_owner: bool,
    /// Whether the order's Stripe ids are written into the extra billing information of
    /// the workspace it creates or binds (`update-extra-billing-information`). Off by
    /// default: it replaces whatever that field held.
    pub billing_information: bool,
}

impl Default for WorkspaceTemplate {
    fn default() -> Self {
        WorkspaceTemplate {
            team_name: "{name}".to_owned(),
            require_email_verification: false,
            trial_days: 0,
            template_ns: String::new(),
            id_field: "workspace_id".to_owned(),
            check_owner: true,
            billing_information: false,
        }
    }
}

/// The `[policy]` table, its words already checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// `on_payment_failed = "pause"`.
    pub pause_on_payment_failed: bool,
    /// `pause_when = "past_due"` (default) or `"unpaid"`: how overdue the subscription
    /// must be before its workspace pauses.
    pub pause_when: Overdue,
    /// `payment_grace_days`: days overdue before the pause.
    pub payment_grace_days: u32,
    /// `on_pause_collection = "pause"`: pausing payment collection pauses the workspace
    /// too (by default it is a grace period with access).
    pub pause_on_pause_collection: bool,
    /// `trial = "paid_plan"`: a trialing subscription gets its paid plan at once (by
    /// default it gets UChat's own trial until it converts).
    pub paid_plan_in_trial: bool,
    pub on_cancel: CancelSteps,
    /// What a full refund of a subscription payment does.
    pub on_refund: OnRefund,
    /// `on_dispute = "pause"`.
    pub pause_on_dispute: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            pause_on_payment_failed: true,
            pause_when: Overdue::PastDue,
            payment_grace_days: 0,
            pause_on_pause_collection: false,
            paid_plan_in_trial: false,
            on_cancel: CancelSteps {
                pause: true,
                disable_auto_renew: true,
                ..CancelSteps::default()
            },
            on_refund: OnRefund::Nothing,
            pause_on_dispute: true,
        }
    }
}

/// The `on_cancel` words: what happens to the workspace when its subscription ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CancelSteps {
    pub pause: bool,
    pub disable_auto_renew: bool,
    pub downgrade_to_free: bool,
    pub delete: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnRefund {
    Nothing,
    Pause,
    /// Treat it as a cancellation: the `on_cancel` steps.
    Cancel,
}

/// Everything wrong with a catalog file, or why it could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{}", one_per_line(.0))]
    Invalid(Vec<Problem>),
}

/// One problem in a catalog file, at a line the partner can go to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}: {}", self.file, self.line, self.message)
    }
}

fn one_per_line(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

/// A catalog that passed its checks, with what looks wrong but may be meant.
#[derive(Debug)]
pub struct Checked {
    pub catalog: Catalog,
    pub warnings: Vec<Problem>,
    /// Every UChat id the catalog names, where it names it.
    pub references: Vec<Reference>,
}

/// Which of the partner's UChat lists an id must be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    Plan,
    Addon,
    Template,
}

/// A UChat id the catalog names, at its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub kind: IdKind,
    pub id: String,
    pub file: String,
    pub line: usize,
}

impl Reference {
    /// A problem when `known` (the ids of its kind's list) lacks the id.
    pub fn check(&self, known: &[&str]) -> Option<Problem> {
        if known.contains(&self.id.as_str()) {
            return None;
        }
        let (what, list) = match self.kind {
            IdKind::Plan => ("plan", "/partner/plans"),
            IdKind::Addon => ("add-on", "/partner/addons"),
            IdKind::Template => ("template", "/partner/templates"),
        };
        Some(Problem {
            file: self.file.clone(),
            line: self.line,
            message: format!(
                "{what} \"{}\" is not in your UChat account (GET {list} has: {})",
                self.id,
                known.join(", ")
            ),
        })
    }
}

impl Catalog {
    pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
        Catalog::check_file(path).map(|checked| checked.catalog)
    }

    /// [`Catalog::load`], with the warnings.
    pub fn check_file(path: &Path) -> Result<Checked, CatalogError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            file: file.clone(),
            source,
        })?;
        Catalog::check(&file, &text)
    }

    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        Catalog::parse_named("catalog", text)
    }

    /// Parses and checks a catalog; `file` names it in problems.
    pub fn parse_named(file: &str, text: &str) -> Result<Catalog, CatalogError> {
        Catalog::check(file, text).map(|checked| checked.catalog)
    }

    /// Parses and checks a catalog, finding every problem in one go: syntax, types and
    /// meaning. `file` names it in problems and warnings.
    pub fn check(file: &str, text: &str) -> Result<Checked, CatalogError> {
        let source = Source { file, text };
        let (raw, mut problems) = read_raw(&source);
        let policy = raw.policy.check(&source, &mut problems);
        let store = raw.store.check(&source, &mut problems);
        let mut prices = BTreeMap::new();
        let mut public = Vec::new();
        let mut warnings = Vec::new();
        let mut references = Vec::new();
        if !raw.workspace.template_ns.is_empty() {
            let at = text.find("template_ns").unwrap_or(0);
            references.push(source.reference(IdKind::Template, &raw.workspace.template_ns, at));
        }
        for price in &raw.price {
            let price_ref = price.get_ref();
            for (kind, id) in [
                (IdKind::Plan, &price_ref.plan),
                (IdKind::Addon, &price_ref.addon),
                (IdKind::Addon, &price_ref.quantity_addon),
                (IdKind::Template, &price_ref.template),
            ] {
                if let Some(id) = id.as_ref().filter(|id| !id.get_ref().trim().is_empty()) {
                    references.push(source.reference(kind, id.get_ref(), id.span().start));
                }
            }
            if let Some((id, product)) = check_price(price, &source, &prices, &mut problems) {
                if price
                    .get_ref()
                    .public
                    .as_ref()
                    .is_some_and(|p| *p.get_ref())
                {
                    public.push(id.clone());
                }
                prices.insert(id, product);
            }
            warnings.extend(price_id_warning(price.get_ref(), &source));
        }
        if raw.price.is_empty() && problems.is_empty() {
            problems.push(source.problem(
                0..0,
                "the catalog sells nothing: list each Stripe price you sell as a [[price]] \
                 (see catalog.example.toml); without one, every sale waits for an operator",
            ));
        }
        problems.sort_by_key(|problem| problem.line);
        if problems.is_empty() {
            Ok(Checked {
                catalog: Catalog {
                    workspace: raw.workspace,
                    policy,
                    store,
                    prices,
                    public,
                },
                warnings,
                references,
            })
        } else {
            Err(CatalogError::Invalid(problems))
        }
    }

    pub fn price_count(&self) -> usize {
        self.prices.len()
    }

    pub fn product(&self, price: &str) -> Option<&Product> {
        self.prices.get(price)
    }

    /// The prices the storefront sells (`public = true`), in the catalog's order.
    pub fn public_prices(&self) -> &[String] {
        &self.public
    }

    pub fn is_public(&self, price: &str) -> bool {
        self.public.iter().any(|p| p == price)
    }

    /// The team name for a new workspace: the template with `{name}` and `{email}` filled in.
    pub fn team_name(&self, name: &str, email: &str) -> String {
        // One pass, so braces inside the buyer's name are never expanded again.
        let mut out = String::new();
        let mut rest = self.workspace.team_name.as_str();
        while let Some(at) = rest.find('{') {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            if let Some(after) = rest.strip_prefix("{name}") {
                out.push_str(name);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("{email}") {
                out.push_str(email);
                rest = after;
            } else {
                out.push('{');
                rest = &rest[1..];
            }
        }
        out.push_str(rest);
        out
    }
}

/// The file being checked, to turn byte offsets into line numbers.
struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn reference(&self, kind: IdKind, id: &str, at: usize) -> Reference {
        let Problem { file, line, .. } = self.problem(at..at, "");
        Reference {
            kind,
            id: id.to_owned(),
            file,
            line,
        }
    }

    fn problem(&self, at: Range<usize>, message: impl Into<String>) -> Problem {
        let before = &self.text.as_bytes()[..at.start.min(self.text.len())];
        Problem {
            file: self.file.to_owned(),
            line: before.iter().filter(|&&b| b == b'\n').count() + 1,
            message: message.into(),
        }
    }
}

/// The catalog as written, and the syntax and type problems found on the way. TOML's
/// parser stops at the first problem, so each one found has its lines blanked out and
/// the text is read again, until it reads: what is left is checked for meaning, and no
/// problem hides another.
fn read_raw(source: &Source) -> (RawCatalog, Vec<Problem>) {
    let mut text = source.text.to_owned();
    let mut problems = Vec::new();
    // Each round blanks at least one line, so this many rounds always end it.
    for _ in 0..=text.lines().count() {
        match toml::from_str::<RawCatalog>(&text) {
            Ok(raw) => return (raw, problems),
            Err(error) => {
                let at = error.span().unwrap_or(0..0);
                let message: Vec<&str> = error.message().lines().map(str::trim).collect();
                let message = message.join("; ");
                // The parser's words name no key; the line's own `key =` does.
                let message = match key_at(&text, at.start) {
                    Some(key) if !message.contains(&format!("`{key}`")) => {
                        format!("{key}: {message}")
                    }
                    _ => message,
                };
                problems.push(source.problem(at.clone(), message));
                if !blank_lines(&mut text, at) {
                    break;
                }
            }
        }
    }
    (RawCatalog::default(), problems)
}

/// The key of the `key = value` line at `offset`, if it is one.
fn key_at(text: &str, offset: usize) -> Option<&str> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |newline| newline + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && !key.starts_with('[') && !key.contains('"')).then_some(key)
}

/// Replaces the lines `at` touches with spaces, keeping every offset and line number;
/// false if they were blank already. A table's header goes with the table's keys, which
/// would otherwise land in the table before it.
fn blank_lines(text: &mut String, at: Range<usize>) -> bool {
    let start = text[..at.start.min(text.len())]
        .rfind('\n')
        .map_or(0, |newline| newline + 1);
    let end = at.end.max(at.start + 1).min(text.len());
    let mut end = text[end..]
        .find('\n')
        .map_or(text.len(), |newline| end + newline);
    if text[start..].trim_start().starts_with('[') {
        let next_header = text[end..]
            .match_indices('\n')
            .map(|(newline, _)| end + newline + 1)
            .find(|&line| {
                text[line..]
                    .trim_start_matches([' ', '\t'])
                    .starts_with('[')
            });
        end = next_header.map_or(text.len(), |line| line - 1).max(end);
    }
    if text[start..end].trim().is_empty() {
        return false;
    }
    let blanked: String = text[start..end]
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    text.replace_range(start..end, &blanked);
    true
}

/// A warning for a `stripe_price` that does not look like a price id: events name prices
/// (`price_...`), so a product's id never matches. A legacy plan's custom id is a price id
/// too, hence a warning, not a problem.
fn price_id_warning(price: &RawPrice, source: &Source) -> Option<Problem> {
    let id = price.stripe_price.as_ref()?;
    let text = id.get_ref().trim();
    if text.is_empty() || text.starts_with("price_") {
        return None;
    }
    let message = if text.starts_with("prod_") {
        format!(
            "price \"{text}\" is a product id: Stripe's events name prices (price_...), so \
             it never matches; list the ids of the product's prices instead"
        )
    } else {
        format!(
            "price \"{text}\" is not a price id (price_...): it matches only if Stripe names a \
             price so (a legacy plan's custom id, say)"
        )
    };
    Some(source.problem(id.span(), message))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    #[serde(default)]
    workspace: WorkspaceTemplate,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    price: Vec<Spanned<RawPrice>>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawStore {
    allow_promotion_codes: Option<bool>,
    automatic_tax: Option<bool>,
    trial_days: Option<Spanned<i64>>,
    max_quantity: Option<Spanned<i64>>,
}

impl RawStore {
    fn check(&self, source: &Source, problems: &mut Vec<Problem>) -> StoreOptions {
        let default = StoreOptions::default();
        let mut number = |value: &Option<Spanned<i64>>, key: &str, least: u32, fallback: u32| {
            let Some(value) = value else { return fallback };
            u32::try_from(*value.get_ref())
                .ok()
                .filter(|&n| n >= least)
                .unwrap_or_else(|| {
                    problems.push(source.problem(
                        value.span(),
                        format!("store.{key} must be a whole number, {least} or more"),
                    ));
                    fallback
                })
        };
        StoreOptions {
            allow_promotion_codes: self
                .allow_promotion_codes
                .unwrap_or(default.allow_promotion_codes),
            automatic_tax: self.automatic_tax.unwrap_or(default.automatic_tax),
            trial_days: number(&self.trial_days, "trial_days", 0, default.trial_days),
            max_quantity: number(&self.max_quantity, "max_quantity", 1, default.max_quantity),
        }
    }
}

type Word = Spanned<String>;

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawPolicy {
    on_payment_failed: Option<Word>,
    pause_when: Option<Word>,
    payment_grace_days: Option<Spanned<i64>>,
    on_pause_collection: Option<Word>,
    trial: Option<Word>,
    on_cancel: Option<Vec<Word>>,
    on_refund: Option<Word>,
    on_dispute: Option<Word>,
}

impl RawPolicy {
    fn check(&self, source: &Source, problems: &mut Vec<Problem>) -> Policy {
        let default = Policy::default();
        let pause_or_none = [("pause", true), ("none", false)];
        let on_cancel = match &self.on_cancel {
            None => default.on_cancel,
            Some(words) => {
                let mut steps = CancelSteps::default();
                for word in words {
                    match word.get_ref().as_str() {
                        "pause" => steps.pause = true,
                        "disable_auto_renew" => steps.disable_auto_renew = true,
                        "downgrade_to_free" => steps.downgrade_to_free = true,
                        "delete" => steps.delete = true,
                        _ => problems.push(unknown_word(
                            source,
                            "on_cancel",
                            word,
                            &["pause", "disable_auto_renew", "downgrade_to_free", "delete"],
                        )),
                    }
                }
                steps
            }
        };
        let on_refund = [
            ("none", OnRefund::Nothing),
            ("pause", OnRefund::Pause),
            ("cancel", OnRefund::Cancel),
        ];
        let payment_grace_days = match &self.payment_grace_days {
            None => default.payment_grace_days,
            Some(days) => u32::try_from(*days.get_ref()).unwrap_or_else(|_| {
                problems.push(source.problem(
                    days.span(),
                    "policy.payment_grace_days must be a whole number of days, 0 or more",
                ));
                default.payment_grace_days
            }),
        };
        Policy {
            pause_on_payment_failed: choose(
                source,
                "on_payment_failed",
                &self.on_payment_failed,
                &pause_or_none,
                default.pause_on_payment_failed,
                problems,
            ),
            pause_when: choose(
                source,
                "pause_when",
                &self.pause_when,
                &[("past_due", Overdue::PastDue), ("unpaid", Overdue::Unpaid)],
                default.pause_when,
                problems,
            ),
            payment_grace_days,
            pause_on_pause_collection: choose(
                source,
                "on_pause_collection",
                &self.on_pause_collection,
                &[("keep_access", false), ("pause", true)],
                default.pause_on_pause_collection,
                problems,
            ),
            paid_plan_in_trial: choose(
                source,
                "trial",
                &self.trial,
                &[("uchat_trial", false), ("paid_plan", true)],
                default.paid_plan_in_trial,
                problems,
            ),
            on_cancel,
            on_refund: choose(
                source,
                "on_refund",
                &self.on_refund,
                &on_refund,
                default.on_refund,
                problems,
            ),
            pause_on_dispute: choose(
                source,
                "on_dispute",
                &self.on_dispute,
                &pause_or_none,
                default.pause_on_dispute,
                problems,
            ),
        }
    }
}

/// The meaning of a policy word; the default when it is absent or unknown (then a problem).
fn choose<T: Copy>(
    source: &Source,
    key: &str,
    word: &Option<Word>,
    choices: &[(&str, T)],
    default: T,
    problems: &mut Vec<Problem>,
) -> T {
    let Some(word) = word else { return default };
    match choices.iter().find(|(w, _)| w == word.get_ref()) {
        Some(&(_, meaning)) => meaning,
        None => {
            let expected: Vec<&str> = choices.iter().map(|&(w, _)| w).collect();
            problems.push(unknown_word(source, key, word, &expected));
            default
        }
    }
}

fn unknown_word(source: &Source, key: &str, word: &Word, expected: &[&str]) -> Problem {
    source.problem(
        word.span(),
        format!(
            "policy.{key}: unknown word \"{}\" (expected one of: {})",
            word.get_ref(),
            expected.join(", ")
        ),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    stripe_price: Option<Spanned<String>>,
    plan: Option<Spanned<String>>,
    addon: Option<Spanned<String>>,
    qty: Option<Spanned<i64>>,
    points: Option<Spanned<i64>>,
    auto_renew: Option<Spanned<bool>>,
    quantity_addon: Option<Spanned<String>>,
    template: Option<Spanned<String>>,
    /// Sold on the storefront (`GET /store/catalog`, `POST /store/checkout`).
    public: Option<Spanned<bool>>,
}

/// A `[[price]]`'s id and product when it is sound; its problems otherwise.
fn check_price(
    spanned: &Spanned<RawPrice>,
    source: &Source,
    seen: &BTreeMap<String, Product>,
    problems: &mut Vec<Problem>,
) -> Option<(String, Product)> {
    let before = problems.len();
    let price = spanned.get_ref();
    let mut report = |at: Range<usize>, message: String| problems.push(source.problem(at, message));
    let id = match &price.stripe_price {
        None => {
            report(spanned.span(), "a price has no stripe_price".to_owned());
            return None;
        }
        Some(id) if id.get_ref().trim().is_empty() => {
            report(id.span(), "a price has an empty stripe_price".to_owned());
            return None;
        }
        Some(id) => id,
    };
    let label = format!("price \"{}\"", id.get_ref());
    if seen.contains_key(id.get_ref()) {
        report(id.span(), format!("{label} is listed twice"));
    }
    let sold = [
        price.plan.is_some(),
        price.addon.is_some(),
        price.points.is_some(),
    ];
    if sold.iter().filter(|&&s| s).count() != 1 {
        report(
            spanned.span(),
            format!("{label} must sell exactly one of plan, addon or points"),
        );
    }
    for (key, value) in [("plan", &price.plan), ("addon", &price.addon)] {
        if let Some(value) = value.as_ref().filter(|v| v.get_ref().trim().is_empty()) {
            report(value.span(), format!("{label} has an empty {key} id"));
        }
    }
    let qty = match &price.qty {
        Some(qty) if price.addon.is_none() => {
            report(qty.span(), format!("{label}: qty applies only to an addon"));
            1
        }
        Some(qty) => u32::try_from(*qty.get_ref())
            .ok()
            .filter(|&q| q > 0)
            .unwrap_or_else(|| {
                report(
                    qty.span(),
                    format!("{label}: qty must be a positive whole number"),
                );
                1
            }),
        None => 1,
    };
    for (key, set) in [
        ("auto_renew", price.auto_renew.as_ref().map(Spanned::span)),
        (
            "quantity_addon",
            price.quantity_addon.as_ref().map(Spanned::span),
        ),
        ("template", price.template.as_ref().map(Spanned::span)),
    ] {
        if let Some(at) = set.filter(|_| price.plan.is_none()) {
            report(at, format!("{label}: {key} applies only to a plan"));
        }
    }
    for (key, value) in [
        ("quantity_addon", &price.quantity_addon),
        ("template", &price.template),
    ] {
        if let Some(value) = value.as_ref().filter(|v| v.get_ref().trim().is_empty()) {
            report(value.span(), format!("{label} has an empty {key} id"));
        }
    }
    if let Some(points) = price.points.as_ref().filter(|p| *p.get_ref() <= 0) {
        report(points.span(), format!("{label}: points must be positive"));
    }
    if problems.len() > before {
        return None;
    }
    let product = match (&price.plan, &price.addon, &price.points) {
        (Some(plan), _, _) => Product::Plan(PlanPrice {
            plan: plan.get_ref().clone(),
            auto_renew: price.auto_renew.as_ref().is_some_and(|a| *a.get_ref()),
            quantity_addon: price.quantity_addon.as_ref().map(|a| a.get_ref().clone()),
            template: price.template.as_ref().map(|t| t.get_ref().clone()),
        }),
        (_, Some(addon), _) => Product::Addon {
            addon: addon.get_ref().clone(),
            qty,
        },
        (_, _, points) => Product::Points(*points.as_ref()?.get_ref()),
    };
    Some((id.get_ref().clone(), product))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match Catalog::parse_named("catalog.toml", text) {
            Err(CatalogError::Invalid(problems)) => {
                problems.iter().map(Problem::to_string).collect()
            }
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn the_example_parses_and_documents_the_defaults() {
        let example = Catalog::parse(include_str!("../../catalog.example.toml")).unwrap();
        assert_eq!(example.workspace, WorkspaceTemplate::default());
        assert_eq!(example.policy, Policy::default());
        assert_eq!(example.store, StoreOptions::default());
        assert_eq!(
            example.public_prices(),
            ["price_1PBusiness", "price_1PExtraBot", "price_1PPoints1000"]
        );
        assert_eq!(
            example.product("price_1PBusiness"),
            Some(&Product::Plan(PlanPrice {
                plan: "business".into(),
                auto_renew: false,
                quantity_addon: None,
                template: None,
            }))
        );
        assert_eq!(
            example.product("price_1PExtraBot"),
            Some(&Product::Addon {
                addon: "bot".into(),
                qty: 1
            })
        );
        assert_eq!(
            example.product("price_1PPoints1000"),
            Some(&Product::Points(1000))
        );
        assert_eq!(example.product("price_other"), None);
    }

    #[test]
    fn the_store_table_sets_checkout_options_and_public_prices_keep_their_order() {
        let catalog = Catalog::parse(
            r#"
            [store]
            allow_promotion_codes = true
            automatic_tax = true
            trial_days = 14
            max_quantity = 5

            [[price]]
            stripe_price = "price_b"
            plan = "business"
            public = true

            [[price]]
            stripe_price = "price_hidden"
            plan = "business"

            [[price]]
            stripe_price = "price_a"
            points = 10
            public = true
            "#,
        )
        .unwrap();
        assert_eq!(
            catalog.store,
            StoreOptions {
                allow_promotion_codes: true,
                automatic_tax: true,
                trial_days: 14,
                max_quantity: 5,
            }
        );
        assert_eq!(catalog.public_prices(), ["price_b", "price_a"]);
        assert!(catalog.is_public("price_a") && !catalog.is_public("price_hidden"));
        let text = "[store]\ntrial_days = -1\nmax_quantity = 0\n\n[[price]]\nstripe_price = \"p\"\nplan = \"b\"\n";
        assert_eq!(
            problems(text),
            [
                "catalog.toml line 2: store.trial_days must be a whole number, 0 or more",
                "catalog.toml line 3: store.max_quantity must be a whole number, 1 or more",
            ]
        );
    }

    /// The least a catalog can be: one price.
    const ONE_PRICE: &str = "[[price]]\nstripe_price = \"price_a\"\nplan = \"business\"\n";

    #[test]
    fn plan_prices_may_renew_and_map_a_quantity() {
        let catalog = Catalog::parse(
            r#"
            [[price]]
            stripe_price = "price_seats"
            plan = "business"
            auto_renew = true
            quantity_addon = "member"
            "#,
        )
        .unwrap();
        assert_eq!(
            catalog.product("price_seats"),
            Some(&Product::Plan(PlanPrice {
                plan: "business".into(),
                auto_renew: true,
                quantity_addon: Some("member".into()),
                template: None,
            }))
        );
        let text = "[[price]]\nstripe_price = \"p\"\naddon = \"bot\"\nauto_renew = true\nquantity_addon = \" \"\n\n[policy]\npayment_grace_days = -1\ntrial = \"free\"\n";
        assert_eq!(
            problems(text),
            [
                r#"catalog.toml line 4: price "p": auto_renew applies only to a plan"#,
                r#"catalog.toml line 5: price "p": quantity_addon applies only to a plan"#,
                r#"catalog.toml line 5: price "p" has an empty quantity_addon id"#,
                "catalog.toml line 8: policy.payment_grace_days must be a whole number of days, 0 or more",
                r#"catalog.toml line 9: policy.trial: unknown word "free" (expected one of: uchat_trial, paid_plan)"#,
            ]
        );
    }

    #[test]
    fn a_catalog_of_one_price_has_the_defaults() {
        let catalog = Catalog::parse(ONE_PRICE).unwrap();
        assert_eq!(catalog.workspace, WorkspaceTemplate::default());
        assert_eq!(catalog.policy, Policy::default());
        assert_eq!(catalog.store, StoreOptions::default());
        assert!(catalog.public_prices().is_empty());
        assert_eq!(catalog.price_count(), 1);
    }

    #[test]
    fn a_catalog_that_sells_nothing_is_refused() {
        for text in ["", "# nothing yet\n", "[workspace]\ntrial_days = 7\n"] {
            let [nothing] = &problems(text)[..] else {
                panic!("one problem expected for {text:?}")
            };
            assert!(
                nothing.starts_with("catalog.toml line 1: the catalog sells nothing"),
                "{nothing}"
            );
        }
    }

    #[test]
    fn ids_that_are_not_price_ids_are_warned_about() {
        let text = format!(
            "{ONE_PRICE}\n[[price]]\nstripe_price = \"prod_Q1\"\nplan = \"business_plus\"\n\n\
             [[price]]\nstripe_price = \"gold-monthly\"\nplan = \"business_large\"\n"
        );
        let checked = Catalog::check("catalog.toml", &text).unwrap();
        assert_eq!(checked.catalog.price_count(), 3, "warnings refuse nothing");
        let warnings: Vec<String> = checked.warnings.iter().map(Problem::to_string).collect();
        assert_eq!(warnings.len(), 2, "{warnings:#?}");
        assert!(
            warnings[0].starts_with(r#"catalog.toml line 6: price "prod_Q1" is a product id"#),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[1]
                .starts_with(r#"catalog.toml line 10: price "gold-monthly" is not a price id"#),
            "{}",
            warnings[1]
        );
        let example = Catalog::check("x", include_str!("../../catalog.example.toml")).unwrap();
        assert!(example.warnings.is_empty());
    }

    #[test]
    fn a_template_belongs_to_a_plan_and_every_uchat_id_is_referenced_at_its_line() {
        let text = "[workspace]\ntemplate_ns = \"tpl_a\"\n\n[[price]]\nstripe_price = \"price_p\"\nplan = \"business\"\ntemplate = \"tpl_b\"\n\n[[price]]\nstripe_price = \"price_b\"\naddon = \"bot\"\n";
        let checked = Catalog::check("catalog.toml", text).unwrap();
        let references: Vec<(IdKind, &str, usize)> = checked
            .references
            .iter()
            .map(|r| (r.kind, r.id.as_str(), r.line))
            .collect();
        assert_eq!(
            references,
            [
                (IdKind::Template, "tpl_a", 2),
                (IdKind::Plan, "business", 6),
                (IdKind::Template, "tpl_b", 7),
                (IdKind::Addon, "bot", 11),
            ]
        );
        assert_eq!(checked.references[1].check(&["free", "business"]), None);
        let unknown = checked.references[3].check(&["member"]).unwrap();
        assert_eq!(
            unknown.to_string(),
            "catalog.toml line 11: add-on \"bot\" is not in your UChat account \
             (GET /partner/addons has: member)"
        );
        let misplaced = text.replace("addon = \"bot\"", "addon = \"bot\"\ntemplate = \"\"");
        assert_eq!(
            problems(&misplaced),
            [
                "catalog.toml line 12: price \"price_b\": template applies only to a plan",
                "catalog.toml line 12: price \"price_b\" has an empty template id",
            ]
        );
    }

    #[test]
    fn syntax_type_and_meaning_problems_are_all_reported_in_one_run() {
        let text = r#"[workspace]
trial_days = "seven"
team = "x"

[policy]
on_refund = "maybe"
on_dispute =

[[price]]
stripe_price = "price_a"
plan = "business"
qty = "two"

[[price]
stripe_price = "price_b"

[[price]]
stripe_price = "price_c"
points = -1
"#;
        let found = problems(text);
        let lines: Vec<&str> = found
            .iter()
            .map(|problem| problem.split(':').next().unwrap())
            .collect();
        for line in [2, 3, 6, 7, 12, 14, 19] {
            assert!(
                lines.contains(&format!("catalog.toml line {line}").as_str()),
                "no problem on line {line}: {found:#?}"
            );
        }
        assert!(
            found.iter().any(|p| p.contains("points must be positive")),
            "{found:#?}"
        );
    }

    #[test]
    fn policy_words_are_read() {
        let catalog = Catalog::parse(&format!(
            r#"
            [policy]
            on_payment_failed = "none"
            pause_when = "unpaid"
            payment_grace_days = 7
            on_pause_collection = "pause"
            trial = "paid_plan"
            on_cancel = ["downgrade_to_free", "delete"]
            on_refund = "cancel"
            on_dispute = "none"
            {ONE_PRICE}"#,
        ))
        .unwrap();
        assert_eq!(
            catalog.policy,
            Policy {
                pause_on_payment_failed: false,
                pause_when: Overdue::Unpaid,
                payment_grace_days: 7,
                pause_on_pause_collection: true,
                paid_plan_in_trial: true,
                on_cancel: CancelSteps {
                    downgrade_to_free: true,
                    delete: true,
                    ..CancelSteps::default()
                },
                on_refund: OnRefund::Cancel,
                pause_on_dispute: false,
            }
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = r#"[policy]
on_payment_failed = "stop"
on_cancel = ["pause", "refund"]

[[price]]
stripe_price = "price_a"
plan = "business"

[[price]]
stripe_price = "price_a"
plan = "business_plus"

[[price]]
stripe_price = "price_b"
plan = "business"
addon = "bot"

[[price]]
stripe_price = "price_c"

[[price]]
stripe_price = "price_d"
plan = "business"
qty = 2

[[price]]
stripe_price = "price_e"
addon = "bot"
qty = 0

[[price]]
stripe_price = "price_f"
points = -5

[[price]]
stripe_price = ""
plan = "business"

[[price]]
stripe_price = "price_g"
addon = " "
"#;
        assert_eq!(
            problems(text),
            [
                r#"catalog.toml line 2: policy.on_payment_failed: unknown word "stop" (expected one of: pause, none)"#,
                r#"catalog.toml line 3: policy.on_cancel: unknown word "refund" (expected one of: pause, disable_auto_renew, downgrade_to_free, delete)"#,
                r#"catalog.toml line 10: price "price_a" is listed twice"#,
                r#"catalog.toml line 13: price "price_b" must sell exactly one of plan, addon or points"#,
                r#"catalog.toml line 18: price "price_c" must sell exactly one of plan, addon or points"#,
                r#"catalog.toml line 24: price "price_d": qty applies only to an addon"#,
                r#"catalog.toml line 29: price "price_e": qty must be a positive whole number"#,
                r#"catalog.toml line 33: price "price_f": points must be positive"#,
                r#"catalog.toml line 36: a price has an empty stripe_price"#,
                r#"catalog.toml line 41: price "price_g" has an empty addon id"#,
            ]
        );
    }

    #[test]
    fn the_error_displays_one_line_per_problem() {
        let error = Catalog::parse("[policy]\non_refund = \"maybe\"\non_dispute = \"ignore\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(error.lines().count(), 2);
        assert!(error.starts_with("catalog line 2: policy.on_refund"));
    }

    #[test]
    fn unknown_keys_and_bad_syntax_name_their_line() {
        let [unknown] = &problems("[workspace]\nteam_name = \"x\"\nteam = \"y\"\n")[..] else {
            panic!("one problem expected")
        };
        assert!(
            unknown.starts_with("catalog.toml line 3: unknown field `team`"),
            "{unknown}"
        );
        let [missing] = &problems("[[price]]\nplan = \"business\"\n")[..] else {
            panic!("one problem expected")
        };
        assert_eq!(missing, "catalog.toml line 1: a price has no stripe_price");
        let [syntax] = &problems("[policy]\non_refund = \n")[..] else {
            panic!("one problem expected")
        };
        assert!(syntax.starts_with("catalog.toml line 2: "), "{syntax}");
    }

    #[test]
    fn load_names_the_file_it_cannot_read() {
        let error = Catalog::load(Path::new("/nonexistent/catalog.toml")).unwrap_err();
        assert!(matches!(error, CatalogError::Read { .. }));
        assert!(error
            .to_string()
            .starts_with("cannot read /nonexistent/catalog.toml: "));
    }

    #[test]
    fn team_name_fills_in_name_and_email_once() {
        let mut catalog = Catalog::parse(ONE_PRICE).unwrap();
        catalog.workspace.team_name = "{name} ({email}) {other}".into();
        assert_eq!(
            catalog.team_name("Ann {email}", "ann@example.com"),
            "Ann {email} (ann@example.com) {other}"
        );
    }
}
