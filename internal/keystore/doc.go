// Package keystore keeps taxlink's private keys so that they are never on
// disk in the clear (standard 第4 5(1)): passphrase-encrypted key files,
// keys on a PKCS#11 token, and key reference strings that say in a
// configuration file which of the two (or, for development, a plain file)
// holds a key.
//
// # Key kinds
//
// ECDSA P-256 keys (TLS and signing keys, used as crypto.Signer) and HPKE
// sealing private keys (crypto/hpke; KEM 0x0050 MLKEM768-P256, the default,
// or 0x0010 DHKEM P-256, serialized by package envelope).
//
// # Encrypted key files
//
// [WriteEncrypted] writes, and [ReadEncrypted] reads, one PEM block:
//
//	-----BEGIN TAXLINK ENCRYPTED KEY-----
//	Cipher: aes-256-gcm
//	KDF: argon2id
//	KDF-Check: <base64 of 16 bytes>
//	KDF-Params: t=3,m=65536,p=1
//	KDF-Salt: <base64 of 16 random bytes>
//	Key-KEM: 0x0050                 (HPKE keys only)
//	Key-Type: ecdsa-p256 | hpke
//	Nonce: <base64 of 12 random bytes>
//	Version: 1
//
//	<base64 of AES-256-GCM ciphertext || 16-byte tag>
//	-----END TAXLINK ENCRYPTED KEY-----
//
// (encoding/pem orders the headers alphabetically.) Argon2id(passphrase,
// salt, t, m, p) yields 48 bytes: the first 32 are the AES-256-GCM key, the
// last 16 are stored as KDF-Check, a passphrase verifier compared in
// constant time, so that a wrong passphrase ([ErrWrongPassphrase]) is told
// apart from a damaged file ([ErrTampered]). The additional authenticated
// data is the line "taxlink encrypted key v1" followed by one line
// "Name: value" per header in the order Version, Key-Type, Key-KEM (HPKE
// only), KDF, KDF-Params, KDF-Salt, KDF-Check, Cipher, Nonce, each line
// ending in "\n". The plaintext is the PKCS#8 DER of the ECDSA key
// (Key-Type ecdsa-p256) or envelope.MarshalPrivateKey's serialization of
// the sealing key (Key-Type hpke, Key-KEM its KEM). Reading is strict: the
// file must be byte for byte what WriteEncrypted writes. Every write uses a
// fresh salt, hence a fresh key, so the random nonce is never reused under
// a key. The default KDF parameters are justified at [DefaultParams].
// Argon2id (RFC 9106) is not itself on CRYPTREC's list; AES-256-GCM is.
//
// A salt, parameter or check value altered in the file derives another key
// and is therefore reported as a wrong passphrase; any other alteration
// (header, nonce, ciphertext, tag, encoding) is [ErrTampered] or
// [ErrMalformed]. Files are written with mode 0600 atomically (temporary
// file, fsync, rename, directory fsync) and refused when group or others
// have any access ([ErrKeyFilePermissions], naming the path and mode).
//
// Passphrases are bytes, used as given (no Unicode normalization). Secrets
// this package derives or decrypts are cleared after use where Go allows;
// the parsed keys themselves live in memory like any Go key.
//
// # PKCS#11 tokens
//
// [OpenToken] opens a token through github.com/ThalesGroup/crypto11 (cgo,
// github.com/miekg/pkcs11). [Token.Signer] and [Token.GenerateSigner]
// return ECDSA P-256 crypto.Signers whose private key stays on the token
// (generated keys are CKA_SENSITIVE and not CKA_EXTRACTABLE); they work as
// tls.Certificate.PrivateKey in TLS 1.3, with x509.CreateCertificate and
// produce ASN.1 signatures for ecdsa.VerifyASN1. Tested with SoftHSM2
// 2.6.1 (Debian package softhsm2).
//
// What a token cannot do here, precisely:
//
//   - Hold HPKE sealing keys. crypto11 v1.6.2 offers signing (ECDSA, RSA,
//     DSA), RSA decryption and symmetric ciphers/HMAC, but no key
//     derivation: there is no call that runs C_DeriveKey with
//     CKM_ECDH1_DERIVE, and its session handles are unexported, so DHKEM
//     P-256 decapsulation (an ECDH with the recipient's private key) cannot
//     be done through it. The token itself could: SoftHSM2 2.6.1 lists
//     CKM_ECDH1_DERIVE (CKF_DERIVE) and, driven directly through
//     miekg/pkcs11, derives the same shared secret as crypto/ecdh from a
//     sensitive, non-extractable P-256 key; Go 1.26's
//     hpke.NewDHKEMPrivateKey accepts any ecdh.KeyExchanger for exactly
//     this. Doing so would need a second PKCS#11 binding of the module
//     beside crypto11's reference-counted one (C_Initialize/C_Finalize
//     would conflict) and a derived CKO_SECRET_KEY created extractable so
//     the DH value can be read back. This package does not do it.
//   - ML-KEM at all: SoftHSM2 2.6 implements PKCS#11 2.40, which has no
//     ML-KEM mechanisms (they arrive with PKCS#11 3.2), so the default KEM
//     MLKEM768-P256 cannot be decapsulated on the token; even with a
//     token-held P-256 half the ML-KEM seed would sit in memory.
//   - Export or import keys: token keys cannot be written to files
//     (WriteEncrypted refuses them with [ErrUnsupported]), and keys are only
//     generated on the token, never imported.
//
// Sealing keys therefore stay in encrypted files (enc: references);
// [LoadSealingKey] refuses pkcs11: references with [ErrUnsupported].
//
// # Key references
//
// [ParseRef] parses "file:PATH" (plain PKCS#8, development only),
// "enc:PATH" (encrypted file) and "pkcs11:token=LABEL;object=LABEL"
// (RFC 7512 style). A reference never contains a secret or a module path:
// [LoadSigner] and [LoadSealingKey] take them from an [Env] (passphrase and
// PIN from a [PassphraseSource]: an environment variable such as
// TAXLINK_KEY_PASSPHRASE / TAXLINK_PKCS11_PIN, a file, or a prompt).
//
// # Errors
//
// Errors wrap this package's sentinels ([ErrWrongPassphrase],
// [ErrTampered], [ErrMalformed], [ErrKeyFilePermissions], [ErrNotFound],
// [ErrUnsupported], …) with %w and name the file, token or label concerned.
// No error message contains a passphrase, a PIN or key bytes.
//
// The package holds no mutable package-level state. (crypto11 itself keeps
// a process-wide table of loaded modules.)
package keystore
