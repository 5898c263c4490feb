// Package transfer moves a tenant's records from one node to another when
// the tenant changes outsourcer (第4 5(4)): the old node re-seals every
// record to the tenant's new sealing key, which only the new node holds,
// into a bundle it signs; the new node verifies the bundle, opens every
// record, checks it against the plaintext digest the old node stated,
// records it, and signs a verification. Only then does the old node erase
// the tenant (its decommission).
//
// A bundle is a directory: manifest.json (the Manifest), manifest.sig
// (ECDSA P-256 over SHA-256 of a domain string and manifest.json, by the
// old node's signing key) and one <ID>.ct file of ciphertext per record.
// The records keep their envelope IDs, types, senders, creation and
// recording times, and carry the original header, signature and recording
// receipt as evidence; the plaintext itself never leaves sealed form.
package transfer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"taxlink/internal/envelope"
	"taxlink/internal/fsutil"
	"taxlink/internal/store"
)

// Domains of the two signatures.
const (
	manifestDomain     = "taxlink/transfer-manifest/v1\x00"
	verificationDomain = "taxlink/transfer-verification/v1\x00"
)

// MaxManifest bounds manifest.json read back.
const MaxManifest = 256 << 20

// Errors callers decide on.
var (
	// ErrBadSignature: the manifest or the verification does not verify.
	ErrBadSignature = errors.New("transfer: signature does not verify")
	// ErrMismatch: a record of the bundle is not what the manifest says.
	ErrMismatch = errors.New("transfer: record does not match the manifest")
)

// Entry is one record of a bundle.
type Entry struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Sender     string    `json:"sender"`
	Created    time.Time `json:"created"`
	RecordedAt time.Time `json:"recorded_at"`
	// Original* are the record as the old node recorded it (evidence of
	// provenance: the sender's signature over the original header).
	OriginalHeader    []byte `json:"original_header"`
	OriginalSignature []byte `json:"original_signature"`
	OriginalReceipt   []byte `json:"original_receipt"`
	// PlainSHA256 is the hex SHA-256 of the plaintext.
	PlainSHA256 string `json:"plain_sha256"`
	// Header is the re-sealed envelope's header and Signature the old
	// node's signature over it.
	Header    []byte `json:"header"`
	Signature []byte `json:"signature"`
}

// Manifest lists a bundle.
type Manifest struct {
	Version int       `json:"version"` // 1
	From    string    `json:"from"`    // the old node
	Tenant  string    `json:"tenant"`
	KeyID   string    `json:"key_id"` // the new sealing key
	Created time.Time `json:"created"`
	Entries []Entry   `json:"entries"`
}

// Opener opens a record's plaintext at the old node.
type Opener func(ctx context.Context, tenant, id string) (io.ReadCloser, *envelope.Header, error)

// Export writes the bundle of tenant's records from src into dir (which
// must not exist), re-sealed to the public key to with ID keyID, signed by
// the old node from with signer. It returns the manifest.
func Export(ctx context.Context, src store.Inbox, open Opener, tenant string, to hpke.PublicKey, keyID, from string, signer crypto.Signer, dir string) (*Manifest, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	m := &Manifest{Version: 1, From: from, Tenant: tenant, KeyID: keyID, Created: time.Now().UTC()}
	var after int64
	for {
		page, err := src.List(ctx, store.Query{Recipient: tenant, AfterSeq: after, Limit: store.MaxListLimit})
		if err != nil {
			return nil, fmt.Errorf("transfer: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			e, err := exportOne(ctx, r, open, tenant, to, keyID, signer, dir)
			if err != nil {
				return nil, err
			}
			m.Entries = append(m.Entries, e)
			after = r.Seq
		}
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	sig, err := sign(signer, manifestDomain, body)
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "manifest.json"), body, 0o600); err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "manifest.sig"), sig, 0o600); err != nil {
		return nil, err
	}
	return m, nil
}

func exportOne(ctx context.Context, r store.Record, open Opener, tenant string, to hpke.PublicKey, keyID string, signer crypto.Signer, dir string) (Entry, error) {
	pt, hdr, err := open(ctx, tenant, r.ID)
	if err != nil {
		return Entry{}, fmt.Errorf("transfer: open %s: %w", r.ID, err)
	}
	defer pt.Close()
	nh := &envelope.Header{ID: r.ID, Type: r.Type, Sender: r.Sender, Recipient: tenant, Created: hdr.Created, ContentType: hdr.ContentType, KeyID: keyID}
	sum := sha256.New()
	var ct bytes.Buffer
	if err := envelope.Seal(to, nh, io.TeeReader(pt, sum), &ct); err != nil {
		return Entry{}, fmt.Errorf("transfer: re-seal %s: %w", r.ID, err)
	}
	hb, err := nh.MarshalBinary()
	if err != nil {
		return Entry{}, err
	}
	sig, err := envelope.Sign(signer, hb)
	if err != nil {
		return Entry{}, err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, r.ID+".ct"), ct.Bytes(), 0o600); err != nil {
		return Entry{}, err
	}
	return Entry{ID: r.ID, Type: r.Type, Sender: r.Sender, Created: r.Created, RecordedAt: r.RecordedAt,
		OriginalHeader: r.Header, OriginalSignature: r.Signature, OriginalReceipt: r.Receipt,
		PlainSHA256: hex.EncodeToString(sum.Sum(nil)), Header: hb, Signature: sig}, nil
}

// Verification is the new node's signed statement that it holds every
// record of a bundle, opened and checked.
type Verification struct {
	Version        int       `json:"version"` // 1
	Node           string    `json:"node"`    // the new node
	From           string    `json:"from"`
	Tenant         string    `json:"tenant"`
	Records        int       `json:"records"`
	PlainBytes     int64     `json:"plain_bytes"`
	ManifestSHA256 string    `json:"manifest_sha256"`
	Time           time.Time `json:"time"`
}

// Import verifies the bundle in dir against the old node's key fromKey,
// opens every record with priv (the tenant's new sealing key), checks it
// against the manifest, records it in dst, and returns the verification
// signed by signer (the new node self). A record already recorded with
// the same header is accepted again unchanged, so an interrupted import
// can be run again.
func Import(ctx context.Context, dir string, fromKey *ecdsa.PublicKey, tenant string, priv hpke.PrivateKey, dst store.Inbox, self string, signer crypto.Signer) (*Verification, []byte, error) {
	body, err := readLimited(filepath.Join(dir, "manifest.json"), MaxManifest)
	if err != nil {
		return nil, nil, err
	}
	sig, err := readLimited(filepath.Join(dir, "manifest.sig"), 1024)
	if err != nil {
		return nil, nil, err
	}
	digest := sha256.Sum256(append([]byte(manifestDomain), body...))
	if !ecdsa.VerifyASN1(fromKey, digest[:], sig) {
		return nil, nil, fmt.Errorf("%w: manifest", ErrBadSignature)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, nil, fmt.Errorf("transfer: manifest: %w", err)
	}
	if m.Version != 1 || m.Tenant != tenant {
		return nil, nil, fmt.Errorf("%w: the bundle is version %d for %s, not for %s", ErrMismatch, m.Version, m.Tenant, tenant)
	}
	v := &Verification{Version: 1, Node: self, From: m.From, Tenant: tenant, Time: time.Now().UTC()}
	for _, e := range m.Entries {
		n, err := importOne(ctx, dir, e, tenant, fromKey, priv, dst)
		if err != nil {
			return nil, nil, err
		}
		v.Records++
		v.PlainBytes += n
	}
	ms := sha256.Sum256(body)
	v.ManifestSHA256 = hex.EncodeToString(ms[:])
	vb, err := json.Marshal(v)
	if err != nil {
		return nil, nil, err
	}
	vs, err := sign(signer, verificationDomain, vb)
	if err != nil {
		return nil, nil, err
	}
	signed, err := json.Marshal(struct {
		Verification json.RawMessage `json:"verification"`
		Signature    []byte          `json:"signature"`
	}{vb, vs})
	return v, signed, err
}

func importOne(ctx context.Context, dir string, e Entry, tenant string, fromKey *ecdsa.PublicKey, priv hpke.PrivateKey, dst store.Inbox) (int64, error) {
	if envelope.ValidID(e.ID) != nil {
		return 0, fmt.Errorf("%w: entry id %q", ErrMismatch, e.ID)
	}
	if err := envelope.Verify(fromKey, e.Header, e.Signature); err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrBadSignature, e.ID, err)
	}
	hdr, err := envelope.ParseHeader(e.Header)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrMismatch, e.ID, err)
	}
	if hdr.ID != e.ID || hdr.Recipient != tenant || hdr.Type != e.Type || hdr.Sender != e.Sender {
		return 0, fmt.Errorf("%w: %s: header names %s/%s/%s", ErrMismatch, e.ID, hdr.ID, hdr.Recipient, hdr.Type)
	}
	ct, err := readLimited(filepath.Join(dir, e.ID+".ct"), int64(hdr.CiphertextSize))
	if err != nil {
		return 0, err
	}
	pt, err := envelope.Open(priv, hdr, bytes.NewReader(ct))
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrMismatch, e.ID, err)
	}
	sum := sha256.New()
	n, err := io.Copy(sum, pt)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrMismatch, e.ID, err)
	}
	if hex.EncodeToString(sum.Sum(nil)) != e.PlainSHA256 {
		return 0, fmt.Errorf("%w: %s: plaintext digest differs", ErrMismatch, e.ID)
	}
	receipt := e.OriginalReceipt
	if len(receipt) == 0 {
		receipt = []byte("{}")
	}
	_, _, err = dst.Record(ctx, store.Record{ID: e.ID, Type: e.Type, Sender: e.Sender, Recipient: tenant, Created: e.Created, RecordedAt: e.RecordedAt,
		Header: e.Header, Signature: e.Signature, CiphertextSize: int64(hdr.CiphertextSize), Receipt: receipt}, bytes.NewReader(ct))
	if err != nil {
		return 0, fmt.Errorf("transfer: record %s: %w", e.ID, err)
	}
	return n, nil
}

// VerifyVerification checks a signed verification with the new node's key.
func VerifyVerification(doc []byte, pub *ecdsa.PublicKey) (*Verification, error) {
	var s struct {
		Verification json.RawMessage `json:"verification"`
		Signature    []byte          `json:"signature"`
	}
	if err := json.Unmarshal(doc, &s); err != nil {
		return nil, fmt.Errorf("transfer: verification: %w", err)
	}
	digest := sha256.Sum256(append([]byte(verificationDomain), s.Verification...))
	if !ecdsa.VerifyASN1(pub, digest[:], s.Signature) {
		return nil, fmt.Errorf("%w: verification", ErrBadSignature)
	}
	var v Verification
	if err := json.Unmarshal(s.Verification, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func sign(signer crypto.Signer, domain string, body []byte) ([]byte, error) {
	d := sha256.Sum256(append([]byte(domain), body...))
	return signer.Sign(rand.Reader, d[:], crypto.SHA256)
}

func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrMismatch, filepath.Base(path), max)
	}
	return b, nil
}
