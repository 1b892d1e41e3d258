//! What a buyer asks to buy, checked against the catalog and turned into the Checkout
//! session to create. Pure: table-tested below.

use reqwest::Url;
use serde::Deserialize;

use super::StoreSettings;
use crate::plan::Catalog;
use crate::stripe::api::{NewCheckout, PriceInfo};

/// The metadata key the processor reads a named workspace from.
pub const WORKSPACE_METADATA_KEY: &str = "uchat_workspace_id";

/// Most distinct prices in one checkout.
const MAX_ITEMS: usize = 20;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub items: Vec<Item>,
    pub email: Option<String>,
    pub workspace_id: Option<String>,
    /// A page under `STORE_SUCCESS_URL`'s folder; that URL itself by default.
    pub success_url: Option<String>,
    /// A page under `STORE_CANCEL_URL`'s folder; that URL itself by default.
    pub cancel_url: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub price: String,
    #[serde(default = "one")]
    pub quantity: u64,
}

fn one() -> u64 {
    1
}

/// An HTML form's fields: one price.
#[derive(Clone, Debug, Deserialize)]
pub struct CheckoutForm {
    pub price: String,
    pub quantity: Option<u64>,
    pub email: Option<String>,
    pub workspace_id: Option<String>,
}

impl From<CheckoutForm> for CheckoutRequest {
    fn from(form: CheckoutForm) -> Self {
        let blank_is_none = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
        CheckoutRequest {
            items: vec![Item {
                price: form.price,
                quantity: form.quantity.unwrap_or(1),
            }],
            email: blank_is_none(form.email),
            workspace_id: blank_is_none(form.workspace_id),
            success_url: None,
            cancel_url: None,
        }
    }
}

/// A checked request: the session to create, and the workspace to check first.
#[derive(Debug, PartialEq, Eq)]
pub struct Checkout {
    pub session: NewCheckout,
    pub workspace_id: Option<i64>,
}

/// Checks `request` against the catalog's public prices as Stripe has them; the reason
/// for the buyer when something is wrong.
pub fn check(
    request: &CheckoutRequest,
    catalog: &Catalog,
    prices: &[PriceInfo],
    settings: &StoreSettings,
) -> Result<Checkout, String> {
    if request.items.is_empty() {
        return Err("choose at least one price".into());
    }
    if request.items.len() > MAX_ITEMS {
        return Err(format!("at most {MAX_ITEMS} prices in one checkout"));
    }
    let max = catalog.store.max_quantity;
    let mut line_items = Vec::new();
    let mut intervals = Vec::new();
    for item in &request.items {
        let price = prices
            .iter()
            .find(|p| p.id == item.price && catalog.is_public(&p.id))
            .ok_or_else(|| format!("price {:?} is not for sale here", shorten(&item.price)))?;
        if line_items.iter().any(|(id, _)| id == &price.id) {
            return Err(format!("price {} is listed twice", price.id));
        }
        let quantity = u32::try_from(item.quantity)
            .ok()
            .filter(|q| (1..=max).contains(q))
            .ok_or_else(|| format!("quantity of {} must be from 1 to {max}", price.id))?;
        line_items.push((price.id.clone(), quantity));
        if let Some(interval) = &price.interval {
            intervals.push((interval.clone(), price.interval_count.unwrap_or(1)));
        }
    }
    intervals.dedup();
    if intervals.len() > 1 {
        return Err("prices billed at different intervals cannot be bought together".into());
    }
    let email = match request.email.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(email) if is_email(email) => Some(email.to_owned()),
        Some(_) => return Err("email is not an email address".into()),
    };
    let workspace_id = match request.workspace_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(id) => Some(
            id.parse::<i64>()
                .ok()
                .filter(|&id| id > 0)
                .ok_or("workspace_id must be the number of your workspace, as UChat shows it")?,
        ),
    };
    if workspace_id.is_some() && email.is_none() && catalog.workspace.check_owner {
        return Err(
            "give the email you log in to UChat with, so the workspace can be checked".into(),
        );
    }
    let success = under(
        request.success_url.as_deref(),
        &settings.success_url,
        "success_url",
    )?;
    let cancel = under(
        request.cancel_url.as_deref(),
        &settings.cancel_url,
        "cancel_url",
    )?;
    let separator = if success.query().is_some() { '&' } else { '?' };
    let metadata = workspace_id
        .map(|id| vec![(WORKSPACE_METADATA_KEY.to_owned(), id.to_string())])
        .unwrap_or_default();
    Ok(Checkout {
        session: NewCheckout {
            subscription: !intervals.is_empty(),
            line_items,
            customer_email: email,
            client_reference_id: workspace_id.map(|id| id.to_string()),
            metadata,
            allow_promotion_codes: catalog.store.allow_promotion_codes,
            automatic_tax: catalog.store.automatic_tax,
            trial_days: catalog.store.trial_days,
            // Stripe fills in the template; its braces must reach Stripe as they are.
            success_url: format!("{success}{separator}session_id={{CHECKOUT_SESSION_ID}}"),
            cancel_url: cancel.to_string(),
        },
        workspace_id,
    })
}

/// `requested` if it is a page in `base`'s folder on `base`'s origin; `base` if none is
/// requested. No request can send a buyer elsewhere.
pub fn under(requested: Option<&str>, base: &Url, name: &str) -> Result<Url, String> {
    let Some(requested) = requested else {
        return Ok(base.clone());
    };
    let folder = &base.path()[..=base.path().rfind('/').unwrap_or(0)];
    match Url::parse(requested) {
        Ok(url) if url.origin() == base.origin() && url.path().starts_with(folder) => Ok(url),
        _ => Err(format!(
            "{name} must be a page under {}{folder}",
            base.origin().ascii_serialization()
        )),
    }
}

fn is_email(email: &str) -> bool {
    email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
}

fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(extra: &str) -> Catalog {
        Catalog::parse(&format!(
            "{extra}
            [[price]]
            stripe_price = \"price_monthly\"
            plan = \"business\"
            public = true
            [[price]]
            stripe_price = \"price_yearly\"
            plan = \"business\"
            public = true
            [[price]]
            stripe_price = \"price_points\"
            points = 100
            public = true
            [[price]]
            stripe_price = \"price_private\"
            plan = \"business\""
        ))
        .unwrap()
    }

    fn price(id: &str, interval: Option<&str>) -> PriceInfo {
        PriceInfo {
            id: id.into(),
            unit_amount: Some(1000),
            currency: "usd".into(),
            interval: interval.map(Into::into),
            interval_count: interval.map(|_| 1),
            active: true,
            product_name: id.into(),
            product_description: None,
        }
    }

    fn prices() -> Vec<PriceInfo> {
        vec![
            price("price_monthly", Some("month")),
            price("price_yearly", Some("year")),
            price("price_points", None),
            price("price_private", Some("month")),
        ]
    }

    fn settings() -> StoreSettings {
        StoreSettings {
            success_url: Url::parse("https://shop.example/store/thanks.html").unwrap(),
            cancel_url: Url::parse("https://shop.example/store/").unwrap(),
            login_url: Url::parse("https://app.example/login").unwrap(),
            allowed_origins: vec![],
            rate_per_minute: 10,
            catalog_refresh: std::time::Duration::from_secs(300),
        }
    }

    fn buying(items: &[(&str, u64)]) -> CheckoutRequest {
        CheckoutRequest {
            items: items
                .iter()
                .map(|(price, quantity)| Item {
                    price: (*price).into(),
                    quantity: *quantity,
                })
                .collect(),
            ..CheckoutRequest::default()
        }
    }

    fn checked(request: &CheckoutRequest) -> Result<Checkout, String> {
        check(request, &catalog(""), &prices(), &settings())
    }

    #[test]
    fn recurring_prices_make_a_subscription_and_one_offs_a_payment() {
        let sub = checked(&buying(&[("price_monthly", 1), ("price_points", 2)])).unwrap();
        assert!(sub.session.subscription);
        assert_eq!(
            sub.session.line_items,
            [("price_monthly".into(), 1), ("price_points".into(), 2)]
        );
        assert_eq!(
            sub.session.success_url,
            "https://shop.example/store/thanks.html?session_id={CHECKOUT_SESSION_ID}"
        );
        assert_eq!(sub.session.cancel_url, "https://shop.example/store/");
        let payment = checked(&buying(&[("price_points", 1)])).unwrap();
        assert!(!payment.session.subscription);
        assert_eq!(payment.workspace_id, None);
        assert!(payment.session.metadata.is_empty());
    }

    #[test]
    fn a_named_workspace_goes_into_the_reference_and_metadata() {
        let request = CheckoutRequest {
            email: Some(" ada@example.com ".into()),
            workspace_id: Some("4242".into()),
            ..buying(&[("price_points", 1)])
        };
        let checkout = checked(&request).unwrap();
        assert_eq!(checkout.workspace_id, Some(4242));
        assert_eq!(
            checkout.session.client_reference_id.as_deref(),
            Some("4242")
        );
        assert_eq!(
            checkout.session.metadata,
            [("uchat_workspace_id".into(), "4242".into())]
        );
        assert_eq!(
            checkout.session.customer_email.as_deref(),
            Some("ada@example.com")
        );
    }

    #[test]
    fn the_store_table_sets_the_sessions_options() {
        let catalog = catalog(
            "[store]\nallow_promotion_codes = true\nautomatic_tax = true\ntrial_days = 7\n",
        );
        let checkout = check(
            &buying(&[("price_monthly", 1)]),
            &catalog,
            &prices(),
            &settings(),
        )
        .unwrap()
        .session;
        assert!(checkout.allow_promotion_codes && checkout.automatic_tax);
        assert_eq!(checkout.trial_days, 7);
    }

    #[test]
    fn bad_requests_get_a_reason_the_buyer_can_act_on() {
        let cases: Vec<(CheckoutRequest, &str)> = vec![
            (buying(&[]), "choose at least one price"),
            (
                buying(&[("price_other", 1)]),
                "price \"price_other\" is not for sale here",
            ),
            (
                buying(&[("price_private", 1)]),
                "price \"price_private\" is not for sale here",
            ),
            (
                buying(&[("price_points", 0)]),
                "quantity of price_points must be from 1 to 100",
            ),
            (
                buying(&[("price_points", 101)]),
                "quantity of price_points must be from 1 to 100",
            ),
            (
                buying(&[("price_points", u64::MAX)]),
                "quantity of price_points must be from 1 to 100",
            ),
            (
                buying(&[("price_points", 1), ("price_points", 1)]),
                "price price_points is listed twice",
            ),
            (
                buying(&[("price_monthly", 1), ("price_yearly", 1)]),
                "prices billed at different intervals cannot be bought together",
            ),
            (
                CheckoutRequest {
                    email: Some("ada".into()),
                    ..buying(&[("price_points", 1)])
                },
                "email is not an email address",
            ),
            (
                CheckoutRequest {
                    email: Some("ada@example.com".into()),
                    workspace_id: Some("12abc".into()),
                    ..buying(&[("price_points", 1)])
                },
                "workspace_id must be the number of your workspace, as UChat shows it",
            ),
            (
                CheckoutRequest {
                    workspace_id: Some("12".into()),
                    ..buying(&[("price_points", 1)])
                },
                "give the email you log in to UChat with, so the workspace can be checked",
            ),
            (
                CheckoutRequest {
                    success_url: Some("https://evil.example/store/thanks.html".into()),
                    ..buying(&[("price_points", 1)])
                },
                "success_url must be a page under https://shop.example/store/",
            ),
            (
                CheckoutRequest {
                    cancel_url: Some("https://shop.example/admin/".into()),
                    ..buying(&[("price_points", 1)])
                },
                "cancel_url must be a page under https://shop.example/store/",
            ),
        ];
        for (request, reason) in cases {
            assert_eq!(checked(&request).unwrap_err(), reason, "{request:?}");
        }
    }

    #[test]
    fn pages_under_the_configured_folder_may_be_named() {
        let base = Url::parse("https://shop.example/store/thanks.html").unwrap();
        for good in [
            "https://shop.example/store/thanks.html?plan=pro",
            "https://shop.example/store/other.html",
        ] {
            assert_eq!(under(Some(good), &base, "u").unwrap().as_str(), good);
        }
        for bad in [
            "https://shop.example/store/../admin",
            "http://shop.example/store/x",
            "https://shop.example.evil/store/x",
            "//evil.example/store/x",
            "javascript:alert(1)",
        ] {
            assert!(under(Some(bad), &base, "u").is_err(), "{bad}");
        }
    }
}
