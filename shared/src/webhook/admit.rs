//! Admit: the checks a request's head alone decides (route, hook, method,
//! `allowIps`, rate, Basic auth, a declared length past the limit), and a
//! sender's GET check, answered here. A server reads a body only for a request
//! admitted: probing unknown hooks or sending unauthenticated uploads costs no
//! memory.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response};

use super::access::{self, SourceIp};
use super::auth;
use super::cache::HookCache;
use super::callers::Callers;
use super::handshake;
use super::refusal::Refusal;
use super::route;
use crate::model::{DeployedWorkflow, HandshakeConfig, is_hook_id};
use crate::ports::Store;

/// A request that passed every check made before its body is read.
pub struct Admitted {
    pub(super) workflow: Arc<DeployedWorkflow>,
    pub(super) hook_id: String,
    /// The largest body this hook takes here.
    pub(super) max_body: usize,
}

impl Admitted {
    /// The largest body the request's hook takes (`trigger.request.maxBodyBytes`,
    /// within the server's ceiling): a server reads at most one byte more.
    pub fn max_body(&self) -> usize {
        self.max_body
    }
}

/// What the head's checks decided. `hook_id` names a deployed, enabled
/// workflow (the label an answer is counted under) once one is found.
pub(super) enum Head {
    Admitted(Admitted),
    /// A sender's GET check, answered.
    Answered {
        hook_id: String,
        answer: Response<Bytes>,
    },
    Refused {
        hook_id: Option<String>,
        refusal: Refusal,
    },
}

/// The `Content-Length` a request declares, if any (and readable).
pub fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub(super) struct Admit {
    store: Arc<dyn Store>,
    hooks: HookCache,
    callers: Arc<Callers>,
    /// The most any hook takes on this server (`HOOKFLOW_MAX_BODY`, `--max-body`).
    body_ceiling: usize,
}

impl Admit {
    pub(super) fn new(
        store: Arc<dyn Store>,
        hooks: HookCache,
        callers: Arc<Callers>,
        body_ceiling: usize,
    ) -> Self {
        Self {
            store,
            hooks,
            callers,
            body_ceiling,
        }
    }

    pub(super) async fn check(&self, parts: &Parts) -> Head {
        let (workflow, hook_id) = match self.find_hook(parts).await {
            Ok(found) => found,
            Err(refusal) => {
                return Head::Refused {
                    hook_id: None,
                    refusal,
                };
            }
        };
        let max_body = workflow
            .definition
            .trigger
            .request
            .max_body_bytes()
            .min(self.body_ceiling);
        match self
            .check_caller(parts, &workflow, &hook_id, max_body)
            .await
        {
            Ok(None) => Head::Admitted(Admitted {
                workflow,
                hook_id,
                max_body,
            }),
            Ok(Some(answer)) => Head::Answered { hook_id, answer },
            Err(refusal) => Head::Refused {
                hook_id: Some(hook_id),
                refusal,
            },
        }
    }

    /// Route, method and hook lookup: the enabled workflow a request is for.
    async fn find_hook(&self, parts: &Parts) -> Result<(Arc<DeployedWorkflow>, String), Refusal> {
        let Some(hook_id) = route::hook_id_from_path(parts.uri.path()) else {
            return Err(Refusal::NoSuchEndpoint);
        };
        // A GET is allowed only on a hook whose sender checks it with one
        // (inbound.md §4), so it is known after the lookup; 405 comes first for
        // anything else, as in part 1.
        let is_post = parts.method == Method::POST;
        let unknown = || match is_post {
            true => Refusal::UnknownHook,
            false => Refusal::MethodNotAllowed { get_too: false },
        };
        // An id no workflow can have is not looked up (nor cached): 404 at once,
        // the answer any unknown id gets.
        if !is_hook_id(&hook_id) {
            return Err(unknown());
        }
        match self.hooks.get(self.store.as_ref(), &hook_id).await {
            Ok(Some(w)) if w.definition.enabled => Ok((w, hook_id)),
            Ok(_) => Err(unknown()),
            Err(e) => {
                tracing::error!(error = %e, "hook lookup failed");
                Err(Refusal::StoreUnavailable(e))
            }
        }
    }

    /// What the hook's trigger asks of the caller: method, address, rate, a GET
    /// handshake (its answer), Basic auth, a declared length within bounds.
    async fn check_caller(
        &self,
        parts: &Parts,
        workflow: &DeployedWorkflow,
        hook_id: &str,
        max_body: usize,
    ) -> Result<Option<Response<Bytes>>, Refusal> {
        let is_get = parts.method == Method::GET;
        let trigger = &workflow.definition.trigger;
        let get_handshake = trigger.handshake.as_ref().filter(|h| h.preset.is_get());
        if !(parts.method == Method::POST || is_get && get_handshake.is_some()) {
            let get_too = get_handshake.is_some();
            return Err(Refusal::MethodNotAllowed { get_too });
        }
        let source = parts.extensions.get::<SourceIp>().copied();
        if !trigger.allow_ips.is_empty() && !access::allowed(source, &trigger.allow_ips) {
            tracing::warn!(hook_id, "a request from outside allowIps was refused");
            return Err(Refusal::AddressNotAllowed);
        }
        let handshake = get_handshake.filter(|_| is_get);
        if let Some(limit) = trigger.rate_limit {
            self.callers
                .room(hook_id, limit, source, handshake.is_some())?;
        }
        if let Some(handshake) = handshake {
            return self
                .answer_get(handshake, workflow, parts, hook_id)
                .await
                .map(Some);
        }
        if let Some(expected) = &trigger.basic_authentication {
            let at = "trigger.basicAuthentication.password";
            let password = self.callers.secret(&expected.password, at, hook_id).await?;
            if !auth::basic_matches(&parts.headers, &expected.username, &password) {
                self.callers.count_failure(workflow, hook_id, source);
                return Err(Refusal::BadCredentials);
            }
        }
        if declared_length(&parts.headers).is_some_and(|n| n > max_body as u64) {
            return Err(Refusal::TooLarge { limit: max_body });
        }
        if trigger.signature.is_none() {
            // Nothing more to check: the caller is as proven as it gets.
            self.callers.take_proven(workflow, hook_id)?;
        }
        Ok(None)
    }

    /// A sender's GET check (`meta`, `dropbox`, `crc`), answered with the
    /// hook's secrets.
    async fn answer_get(
        &self,
        handshake: &HandshakeConfig,
        workflow: &DeployedWorkflow,
        parts: &Parts,
        hook_id: &str,
    ) -> Result<Response<Bytes>, Refusal> {
        let verify_token = match &handshake.verify_token {
            Some(token) => {
                let at = "trigger.handshake.verifyToken";
                Some(self.callers.secret(token, at, hook_id).await?)
            }
            None => None,
        };
        let secret = self
            .callers
            .handshake_secret(handshake, workflow, hook_id)
            .await?;
        let answer = handshake::answer_get(
            handshake.preset,
            parts.uri.query().unwrap_or(""),
            handshake::GetSecrets {
                verify_token: verify_token.as_deref(),
                secret: secret.as_deref(),
            },
        );
        let status = match &answer {
            Ok(answer) => answer.status(),
            Err(refusal) => refusal.status(),
        };
        tracing::info!(hook_id, status = status.as_u16(), "handshake answered");
        answer
    }
}
