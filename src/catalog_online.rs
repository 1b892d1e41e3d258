//! `check-catalog --online`: every plan, add-on and template id the catalog names,
//! looked up in the partner's own lists at UChat.

use crate::partner::{CatalogItem, PartnerClient, PartnerError};
use crate::plan::catalog::{Checked, IdKind, Problem};

/// The partner's lists, as UChat has them now.
pub struct PartnerLists {
    pub plans: Vec<CatalogItem>,
    pub addons: Vec<CatalogItem>,
    pub templates: Vec<CatalogItem>,
}

impl PartnerLists {
    pub async fn read(partner: &PartnerClient) -> Result<PartnerLists, PartnerError> {
        Ok(PartnerLists {
            plans: partner.plans().await?,
            addons: partner.addons().await?,
            templates: partner.templates().await?,
        })
    }

    /// A problem for each id of the catalog that its list lacks, in the file's order.
    pub fn unknown_ids(&self, checked: &Checked) -> Vec<Problem> {
        let ids = |items: &[CatalogItem]| -> Vec<String> {
            items.iter().map(|item| item.id.clone()).collect()
        };
        let (plans, addons, templates) =
            (ids(&self.plans), ids(&self.addons), ids(&self.templates));
        checked
            .references
            .iter()
            .filter_map(|reference| {
                let known = match reference.kind {
                    IdKind::Plan => &plans,
                    IdKind::Addon => &addons,
                    IdKind::Template => &templates,
                };
                let known: Vec<&str> = known.iter().map(String::as_str).collect();
                reference.check(&known)
            })
            .collect()
    }

    /// `6 plans, 8 add-ons, 3 templates`.
    pub fn summary(&self) -> String {
        format!(
            "{} plans, {} add-ons, {} templates",
            self.plans.len(),
            self.addons.len(),
            self.templates.len()
        )
    }
}
