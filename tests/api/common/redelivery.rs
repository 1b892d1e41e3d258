//! Posting webhooks as Stripe does: several posts in flight, each event posted until it
//! is acknowledged with a 2xx, a post that fails or is refused tried again a little later.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One post and what came of it.
#[derive(Debug, Clone)]
pub struct Post {
    pub event_id: String,
    pub finished: Instant,
    /// The HTTP status, or why no answer came.
    pub answer: Result<u16, String>,
}

impl Post {
    pub fn acknowledged(&self) -> bool {
        matches!(self.answer, Ok(status) if (200..300).contains(&status))
    }
}

pub struct StripeSender {
    /// Posts in flight at once.
    pub concurrency: usize,
    /// Each poster's pause after a post, to spread a load over time.
    pub pace: Duration,
    /// How soon a failed or refused post is tried again.
    pub retry_after: Duration,
    /// Everything must be acknowledged by then.
    pub give_up_after: Duration,
}

impl Default for StripeSender {
    fn default() -> Self {
        StripeSender {
            concurrency: 4,
            pace: Duration::ZERO,
            retry_after: Duration::from_millis(200),
            give_up_after: Duration::from_secs(120),
        }
    }
}

struct Queue {
    waiting: VecDeque<(Instant, String, Vec<u8>)>,
    unacknowledged: usize,
    posts: Vec<Post>,
}

impl StripeSender {
    /// Posts every `(event id, body)` to `{address}/webhooks/stripe`, signed at the moment
    /// of each post, until each has been acknowledged; returns every post made. A copy
    /// listed twice is posted (and acknowledged) twice.
    pub async fn send(&self, address: &str, events: Vec<(String, Vec<u8>)>) -> Vec<Post> {
        let now = Instant::now();
        let queue = Arc::new(Mutex::new(Queue {
            unacknowledged: events.len(),
            waiting: events
                .into_iter()
                .map(|(id, body)| (now, id, body))
                .collect(),
            posts: Vec::new(),
        }));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let deadline = now + self.give_up_after;
        let posters: Vec<_> = (0..self.concurrency)
            .map(|_| {
                let (queue, client) = (queue.clone(), client.clone());
                let url = format!("{address}/webhooks/stripe");
                let (pace, retry_after) = (self.pace, self.retry_after);
                tokio::spawn(async move {
                    poster(queue, client, url, pace, retry_after, deadline).await
                })
            })
            .collect();
        for poster in posters {
            if let Err(error) = poster.await {
                std::panic::resume_unwind(error.into_panic());
            }
        }
        let queue = queue.lock().unwrap();
        queue.posts.clone()
    }
}

async fn poster(
    queue: Arc<Mutex<Queue>>,
    client: reqwest::Client,
    url: String,
    pace: Duration,
    retry_after: Duration,
    deadline: Instant,
) {
    loop {
        let next = {
            let mut queue = queue.lock().unwrap();
            if queue.unacknowledged == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} events still unacknowledged; last answers: {:?}",
                queue.unacknowledged,
                &queue.posts[queue.posts.len().saturating_sub(5)..]
            );
            let now = Instant::now();
            match queue.waiting.iter().position(|(due, ..)| *due <= now) {
                Some(index) => queue.waiting.remove(index),
                None => None,
            }
        };
        let Some((_, event_id, body)) = next else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let answer = client
            .post(&url)
            .header("content-type", "application/json")
            .header("stripe-signature", super::sign(&body))
            .body(body.clone())
            .send()
            .await
            .map(|response| response.status().as_u16())
            .map_err(|error| error.to_string());
        let post = Post {
            event_id,
            finished: Instant::now(),
            answer,
        };
        {
            let mut queue = queue.lock().unwrap();
            if post.acknowledged() {
                queue.unacknowledged -= 1;
            } else {
                let due = Instant::now() + retry_after;
                queue.waiting.push_back((due, post.event_id.clone(), body));
            }
            queue.posts.push(post);
        }
        tokio::time::sleep(pace).await;
    }
}

/// The ids of the events that got a 2xx at least once.
pub fn acknowledged(posts: &[Post]) -> BTreeSet<String> {
    posts
        .iter()
        .filter(|post| post.acknowledged())
        .map(|post| post.event_id.clone())
        .collect()
}
