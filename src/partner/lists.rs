//! The reads of the contract beyond a workspace's own state: the partner's clients and
//! templates, and a workspace's flows and members. Parsed as leniently as the rest.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{lenient, CatalogItem, Method, Page, PartnerClient, PartnerError};

/// A UChat user who owns workspaces of the partner's (`GET /partner/clients`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Client {
    #[serde(deserialize_with = "lenient::int")]
    pub id: i64,
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::string")]
    pub email: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A flow of a workspace (`GET /partner/workspace/{id}/list-flows`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Flow {
    #[serde(deserialize_with = "lenient::string")]
    pub ns: String,
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A member of a workspace, its owner included (`GET /partner/workspace/{id}/members`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Member {
    #[serde(deserialize_with = "lenient::string")]
    pub email: String,
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::string")]
    pub role: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl PartnerClient {
    /// One page (from 1) of the partner's clients, optionally filtered by `search`.
    pub async fn list_clients(
        &self,
        page: u32,
        search: Option<&str>,
    ) -> Result<Page<Client>, PartnerError> {
        self.page("/partner/clients", page, search).await
    }

    /// The templates a workspace can be created from or have installed.
    pub async fn templates(&self) -> Result<Vec<CatalogItem>, PartnerError> {
        self.catalog("/partner/templates").await
    }

    pub async fn list_flows(&self, workspace_id: i64) -> Result<Vec<Flow>, PartnerError> {
        self.workspace_list(workspace_id, "list-flows").await
    }

    pub async fn members(&self, workspace_id: i64) -> Result<Vec<Member>, PartnerError> {
        self.workspace_list(workspace_id, "members").await
    }

    async fn workspace_list<T: serde::de::DeserializeOwned>(
        &self,
        workspace_id: i64,
        list: &str,
    ) -> Result<Vec<T>, PartnerError> {
        let path = format!("/partner/workspace/{workspace_id}/{list}");
        let reply = self.send(Method::GET, &path, None).await?;
        reply.decode(reply.data(), list)
    }
}
