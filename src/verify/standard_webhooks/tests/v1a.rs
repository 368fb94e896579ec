//! `v1a` (ed25519) signing and verifying: the reference vector, random keys, forgeries.

use ed25519_dalek::SigningKey;

use super::*;

#[test]
fn v1a_reference_vector_signs_and_verifies() {
    // The Go reference library's asymmetric vector; its key is the 32-byte seed.
    let seed: [u8; 32] = BASE64
        .decode("VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=")
        .unwrap()
        .try_into()
        .unwrap();
    let key = SigningKey::from_bytes(&seed);
    let expected = "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag==";
    assert_eq!(sign_v1a(&key, MSG_ID, TIMESTAMP, BODY), expected);
    let public = public_key_string(&key.verifying_key());
    assert!(public.starts_with("whpk_"));
    let v =
        StandardWebhooksVerifier::new(&[], &secrets(&[&public]), Duration::from_secs(300)).unwrap();
    let ts = TIMESTAMP.to_string();
    assert_eq!(v.check(&signed(&ts, expected)), Ok(()));
    // The reference library's invalid and partial `v1a` signatures.
    assert!(malformed(v.check(&signed(
        &ts,
        "v1a,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    ))));
    assert!(malformed(v.check(&signed(&ts, "v1a,"))));
    // A public key without its prefix works too.
    let bare = public.trim_start_matches("whpk_");
    let v =
        StandardWebhooksVerifier::new(&[], &secrets(&[bare]), Duration::from_secs(300)).unwrap();
    assert_eq!(v.check(&signed(&ts, expected)), Ok(()));
}

#[test]
fn v1a_random_keys_accept_and_reject() {
    let mut rng = rand::rngs::OsRng;
    let key = SigningKey::generate(&mut rng);
    let stranger = SigningKey::generate(&mut rng);
    let public = public_key_string(&key.verifying_key());
    let v = StandardWebhooksVerifier::new(
        &secrets(&[SECRET]),
        &secrets(&[&public]),
        Duration::from_secs(300),
    )
    .unwrap();
    let ts = TIMESTAMP.to_string();
    let good = sign_v1a(&key, MSG_ID, TIMESTAMP, BODY);
    assert_eq!(v.check(&signed(&ts, &good)), Ok(()));
    // v1 still works alongside, and mixed headers pass on either entry.
    assert_eq!(v.check(&signed(&ts, SIGNATURE)), Ok(()));
    assert_eq!(v.check(&signed(&ts, &format!("{OTHER_V1} {good}"))), Ok(()));
    let forged = sign_v1a(&stranger, MSG_ID, TIMESTAMP, BODY);
    assert_eq!(
        v.check(&signed(&ts, &forged)),
        Err(VerifyError::SignatureMismatch)
    );
    let mut tampered = signed(&ts, &good);
    tampered.body.push(b' ');
    assert_eq!(v.check(&tampered), Err(VerifyError::SignatureMismatch));
    // A verifier with only HMAC secrets cannot check v1a and says it did not match.
    assert_eq!(
        verifier(&[SECRET]).check(&signed(&ts, &good)),
        Err(VerifyError::SignatureMismatch)
    );
}
