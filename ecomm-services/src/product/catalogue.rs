//! The catalogue's use cases: cached reads, and writes that invalidate the cache after commit.

use bytes::Bytes;

use super::model::{Product, ProductPage, ValidProduct};
use super::repo::{ProductRepo, WriteError};
use crate::cache::{CacheAside, CacheStatus, Cached};
use crate::http::Problem;

/// Redis key of the list-page generation; bumped on every write so old pages are never read.
pub const LIST_GENERATION_KEY: &str = "products:v1:generation";

/// Redis key of one product.
pub fn product_key(id: i64) -> String {
    format!("products:v1:item:{id}")
}

/// Redis key of one list page under a generation.
pub fn page_key(generation: i64, page: u32, size: u32) -> String {
    format!("products:v1:page:{generation}:{page}:{size}")
}

/// Product reads and writes over the repository and the cache.
pub struct Catalogue {
    repo: ProductRepo,
    cache: CacheAside<Problem>,
}

/// A read's JSON body and where it came from.
pub struct Served {
    /// The JSON body (product, page) or `None` for "not found".
    pub body: Option<Bytes>,
    /// Redis or the database.
    pub status: CacheStatus,
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Bytes, Problem> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| Problem::internal(format!("serialising the response: {e}")))
}

impl Catalogue {
    /// The catalogue over `repo` and `cache`.
    pub fn new(repo: ProductRepo, cache: CacheAside<Problem>) -> Self {
        Self { repo, cache }
    }

    /// The repository (readiness, seeding).
    pub fn repo(&self) -> &ProductRepo {
        &self.repo
    }

    /// The cache (readiness reporting).
    pub fn cache(&self) -> &CacheAside<Problem> {
        &self.cache
    }

    /// One product's JSON, through the cache; `body: None` when it does not exist.
    pub async fn get(&self, id: i64) -> Result<Served, Problem> {
        let repo = self.repo.clone();
        let (value, status) = self
            .cache
            .read(&product_key(id), async move {
                match repo.get(id).await? {
                    Some(product) => Ok(Cached::Found(to_json(&product)?)),
                    None => Ok(Cached::Absent),
                }
            })
            .await?;
        Ok(Served {
            body: match value {
                Cached::Found(bytes) => Some(bytes),
                Cached::Absent => None,
            },
            status,
        })
    }

    /// One page's JSON, through the cache (keyed by the current list generation; without a
    /// readable generation the page comes straight from the database).
    pub async fn page(&self, page: u32, size: u32) -> Result<Served, Problem> {
        let repo = self.repo.clone();
        let load = async move {
            let (items, total) = repo.list(page, size).await?;
            Ok(Cached::Found(to_json(&ProductPage {
                items,
                page,
                size,
                total,
            })?))
        };
        let (value, status) = match self.cache.generation(LIST_GENERATION_KEY).await {
            Some(generation) => {
                self.cache
                    .read(&page_key(generation, page, size), load)
                    .await?
            }
            None => {
                self.cache.count_bypass();
                (load.await?, CacheStatus::Miss)
            }
        };
        Ok(Served {
            body: match value {
                Cached::Found(bytes) => Some(bytes),
                Cached::Absent => None,
            },
            status,
        })
    }

    /// Creates a product, then drops any cached "not found" for its id and every list page.
    pub async fn create(&self, input: &ValidProduct) -> Result<Product, Problem> {
        let product = self.repo.create(input).await.map_err(write_problem)?;
        self.after_write(product.id).await;
        Ok(product)
    }

    /// Replaces a product; `None` when it does not exist.
    pub async fn update(&self, id: i64, input: &ValidProduct) -> Result<Option<Product>, Problem> {
        let product = self.repo.update(id, input).await.map_err(write_problem)?;
        if product.is_some() {
            self.after_write(id).await;
        }
        Ok(product)
    }

    /// Deletes a product; false when it did not exist.
    pub async fn delete(&self, id: i64) -> Result<bool, Problem> {
        let deleted = self.repo.delete(id).await?;
        if deleted {
            self.after_write(id).await;
        }
        Ok(deleted)
    }

    /// Runs after the write committed: delete the item key, move list pages to a new generation.
    async fn after_write(&self, id: i64) {
        self.cache.invalidate(&[product_key(id)]).await;
        self.cache.bump(LIST_GENERATION_KEY).await;
    }
}

fn write_problem(e: WriteError) -> Problem {
    match e {
        WriteError::DuplicateSku(sku) => {
            Problem::conflict(format!("sku {sku:?} is already used by another product"))
        }
        WriteError::Db(e) => e.into(),
    }
}
