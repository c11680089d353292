//! Credentials, region and endpoint for `s3://` inputs from AWS's own default chain
//! (`aws-config`, the AWS SDK for Rust's loader), handed to `object_store`, whose built-in
//! chain reads neither the shared config and credentials files nor profiles.
//!
//! The chain, in AWS's documented order
//! (<https://docs.aws.amazon.com/sdkref/latest/guide/standardized-credentials.html>):
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`; the profile
//! (`AWS_PROFILE`, else `default`) in `~/.aws/credentials` and `~/.aws/config`
//! (`AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`), with its static keys, `role_arn`
//! (STS), `sso_session`, `credential_process`; web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`,
//! `AWS_ROLE_ARN`: EKS service accounts); ECS task credentials; the EC2 instance profile
//! (IMDSv2). The region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, IMDS.
//! The endpoint, in AWS's order for service-specific endpoints
//! (<https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html>):
//! `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the `s3` `endpoint_url` of the profile's
//! `services` section, the profile's `endpoint_url`; none when
//! `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use aws_config::BehaviorVersion;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_types::service_config::ServiceConfigKey;
use object_store::{
    CredentialProvider,
    aws::{AwsCredential, AwsCredentialProvider},
};

/// What the default chain found.
#[derive(Debug)]
pub struct Chain {
    /// Credentials for `object_store`, refreshed before they expire.
    pub credentials: AwsCredentialProvider,
    /// The region, if the chain names one.
    pub region: Option<String>,
    /// The endpoint, if the environment or the profile names one.
    pub endpoint: Option<String>,
}

/// Loads the default chain (reads the environment and the profile's files; the credentials
/// themselves are resolved at the first request). Runs on the caller's tokio runtime.
pub async fn load() -> Chain {
    // TLS through rustls with ring, as the rest of egressor (STS, SSO, ECS, IMDS requests).
    let tls = aws_smithy_http_client::tls::Provider::Rustls(
        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
    );
    let http = aws_smithy_http_client::Builder::new().tls_provider(tls).build_https();
    let sdk = aws_config::defaults(BehaviorVersion::latest()).http_client(http).load().await;
    let provider = sdk.credentials_provider();
    Chain {
        credentials: Arc::new(Credentials { provider, cached: Default::default() }),
        region: sdk.region().map(ToString::to_string),
        endpoint: s3_endpoint(&sdk),
    }
}

/// The endpoint configured for S3 (see the module's documentation for the order), as the
/// AWS SDK's own S3 client reads it: the service-specific settings under the service id
/// `S3`, which fall back to the general ones.
fn s3_endpoint(sdk: &aws_config::SdkConfig) -> Option<String> {
    let key = ServiceConfigKey::builder()
        .service_id("S3")
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .expect("every field of the key is set");
    sdk.service_config()
        .and_then(|config| config.load_config(key))
        .or_else(|| sdk.endpoint_url().map(str::to_owned))
}

/// Credentials this long before their expiry are fetched again.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// The chain's credentials as `object_store` asks for them: fetched once, and again when
/// those held are within [`REFRESH_BEFORE_EXPIRY`] of their expiry (static keys never
/// expire; STS, SSO and instance credentials do).
#[derive(Debug)]
struct Credentials {
    provider: Option<SharedCredentialsProvider>,
    cached: tokio::sync::Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

#[async_trait::async_trait]
impl CredentialProvider for Credentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        if let Some((credential, expiry)) = &*cached
            && expiry.is_none_or(|e| e > SystemTime::now() + REFRESH_BEFORE_EXPIRY)
        {
            return Ok(credential.clone());
        }
        let generic =
            |message: String| object_store::Error::Generic { store: "S3", source: message.into() };
        let provider =
            self.provider.as_ref().ok_or_else(|| generic(failed("no provider is configured")))?;
        let c = provider
            .provide_credentials()
            .await
            .map_err(|e| generic(failed(&crate::reader::error_chain(&e))))?;
        let credential = Arc::new(AwsCredential {
            key_id: c.access_key_id().to_owned(),
            secret_key: c.secret_access_key().to_owned(),
            token: c.session_token().map(str::to_owned),
        });
        *cached = Some((credential.clone(), c.expiry()));
        Ok(credential)
    }
}

/// The error when the chain gives no credentials: where it looked (the profile and files
/// as the environment names them), and what it said. (The chain stops at the first
/// provider that is configured, so that the error is either that one's or, when none is,
/// the last one's: the SDK's error types do not tell the two apart reliably.)
fn failed(problem: &str) -> String {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
    let credentials =
        env("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|| "~/.aws/credentials".to_owned());
    let config = env("AWS_CONFIG_FILE").unwrap_or_else(|| "~/.aws/config".to_owned());
    format!(
        "no AWS credentials from the default chain (AWS_ACCESS_KEY_ID, profile {profile:?} in \
         {credentials} and {config}, web identity, ECS, EC2 instance metadata; the first one \
         configured answers, else the last): {problem}"
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use aws_credential_types::provider::future;

    use super::*;

    /// Counts its calls; its credentials expire `lifetime` after each call.
    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicU32>,
        lifetime: Option<Duration>,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let expiry = self.lifetime.map(|l| SystemTime::now() + l);
            let c = aws_credential_types::Credentials::new(
                format!("AKID{n}"),
                "secret",
                Some("token".into()),
                expiry,
                "test",
            );
            future::ProvideCredentials::ready(Ok(c))
        }
    }

    fn fetch_three(lifetime: Option<Duration>) -> (u32, Vec<String>) {
        let calls = Arc::new(AtomicU32::new(0));
        let provider = SharedCredentialsProvider::new(Counting { calls: calls.clone(), lifetime });
        let c = Credentials { provider: Some(provider), cached: Default::default() };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let ids = (0..3)
            .map(|_| runtime.block_on(c.get_credential()).unwrap())
            .map(|a| {
                assert_eq!((a.secret_key.as_str(), a.token.as_deref()), ("secret", Some("token")));
                a.key_id.clone()
            })
            .collect();
        (calls.load(Ordering::SeqCst), ids)
    }

    #[test]
    fn credentials_are_fetched_again_only_near_their_expiry() {
        assert_eq!(fetch_three(None), (1, vec!["AKID0".into(); 3]), "static keys: once");
        let hour = Some(Duration::from_secs(3600));
        assert_eq!(fetch_three(hour), (1, vec!["AKID0".into(); 3]), "an hour left: kept");
        let (calls, ids) = fetch_three(Some(REFRESH_BEFORE_EXPIRY - Duration::from_secs(1)));
        assert_eq!((calls, ids), (3, vec!["AKID0".into(), "AKID1".into(), "AKID2".into()]));
    }

    #[test]
    fn no_provider_is_an_error_naming_the_chain() {
        let c = Credentials { provider: None, cached: Default::default() };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let e = runtime.block_on(c.get_credential()).unwrap_err().to_string();
        assert!(e.contains("no AWS credentials from the default chain ("), "{e}");
        assert!(
            e.ends_with(
                "the first one configured answers, else the last): no provider is configured"
            ),
            "{e}"
        );
    }
}
