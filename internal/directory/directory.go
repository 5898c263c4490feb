// Package directory holds the network's signed global configuration: the
// participants, the nodes that host them and their endpoints, the keys that
// sign envelopes and receipts, the tenants' sealing keys, the notification
// types and the peer policy.
//
// A directory travels as a [Signed] document: the JSON body and an ECDSA
// P-256 signature by the hub's directory key over it. [Verify] checks the
// signature before anything in the body is trusted, and then validates every
// field; a directory that fails either check is refused whole. The parsed
// [Directory] answers the questions the hub and the nodes ask on every
// message: who hosts this participant, which key signs for that node, may this
// sender send this type to that recipient.
package directory

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sync"
	"time"

	"taxlink/internal/envelope"
	"taxlink/internal/pki"
)

// MaxSize bounds a signed directory document; a bigger one is refused before
// it is parsed. 1,788 local governments with two sealing keys each fit in a
// few megabytes.
const MaxSize = 16 << 20

// Errors callers decide on.
var (
	// ErrBadSignature: the directory's signature does not verify.
	ErrBadSignature = errors.New("directory: signature does not verify")
	// ErrInvalid: the directory is malformed or inconsistent.
	ErrInvalid = errors.New("directory: invalid")
	// ErrUnknown: the participant, node or type is not in the directory.
	ErrUnknown = errors.New("directory: unknown")
)

// Directory is the network's configuration at one version.
type Directory struct {
	Version     uint64    `json:"version"`
	Environment string    `json:"environment"`
	Issued      time.Time `json:"issued"`
	Hub         Hub       `json:"hub"`
	Nodes       []Node    `json:"nodes"`
	// Participants are the senders and recipients: the NTA, local
	// governments, outsourcers.
	Participants []Participant `json:"participants"`
	Types        []Type        `json:"types"`
	// Policy lists what is allowed; everything else is denied.
	Policy []Rule `json:"policy"`
	// Window is the hub's acceptance calendar (zero: always open).
	Window Window `json:"window,omitzero"`
	// Holds are incident measures in force; Bulletins are notices to the
	// participants' consoles.
	Holds     []Hold     `json:"holds,omitempty"`
	Bulletins []Bulletin `json:"bulletins,omitempty"`

	participants map[string]*Participant
	nodes        map[string]*Node
	hostedBy     map[string]*Node
	types        map[string]*Type
}

// Hub is the hub's entry.
type Hub struct {
	ID         string `json:"id"`
	Endpoint   string `json:"endpoint"`
	SigningKey string `json:"signing_key"` // PEM, PKIX ECDSA P-256

	signingKey *ecdsa.PublicKey
}

// Node is a participant's server: it records for the tenants it hosts and
// submits on their behalf.
type Node struct {
	ID         string   `json:"id"` // the participant ID in the node's TLS certificate
	Name       string   `json:"name"`
	Endpoint   string   `json:"endpoint"` // https URL of its inbox
	SigningKey string   `json:"signing_key"`
	Tenants    []string `json:"tenants"`
	// Operator is the outsourcer (認定委託先事業者) that runs the node for
	// its tenants, if any; the hub routes to the node only while the
	// operator's certification is valid.
	Operator string `json:"operator,omitempty"`

	signingKey *ecdsa.PublicKey
}

// Participant is a sender or recipient of notifications.
type Participant struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Kind is one of "nta", "prefecture", "municipality", "outsourcer".
	Kind        string       `json:"kind"`
	SealingKeys []SealingKey `json:"sealing_keys,omitempty"`
	// Suspended stops new notifications from and to the participant and
	// holds what is queued for it (第2 4(2)).
	Suspended bool `json:"suspended,omitempty"`
	// Certification is an outsourcer's certification by the 機構
	// (第4 10(1)); required for kind "outsourcer".
	Certification *Certification `json:"certification,omitempty"`

	// parsed holds the sealing keys parsed so far by key ID (set when the
	// directory is validated).
	parsed *parsedKeys
}

// parsedKeys holds a participant's parsed sealing keys by key ID, filled
// as senders ask for them: parsing an ML-KEM key for every notification
// was 3 % of a sending node's CPU, and keeping every participant's parsed
// keys from the start would cost each process tens of megabytes.
type parsedKeys struct{ m sync.Map } // key ID → hpke.PublicKey

// PublicKey returns the parsed public key of k, one of p's sealing keys
// (SealingKeyAt). A participant of a validated directory parses each key
// once; a directory that replaces it starts afresh.
func (p *Participant) PublicKey(k SealingKey) (hpke.PublicKey, error) {
	if p.parsed != nil {
		if pub, ok := p.parsed.m.Load(k.ID); ok {
			return pub.(hpke.PublicKey), nil
		}
	}
	raw, err := base64.StdEncoding.DecodeString(k.Public)
	if err != nil {
		return nil, fmt.Errorf("%w: sealing key %s of %s: not base64", envelope.ErrBadKey, k.ID, p.ID)
	}
	pub, err := envelope.ParsePublicKey(k.KEM, raw)
	if err != nil {
		return nil, err
	}
	if p.parsed != nil {
		p.parsed.m.Store(k.ID, pub)
	}
	return pub, nil
}

// Certification is the period for which an outsourcer is certified and the
// date of its last audit.
type Certification struct {
	From      time.Time `json:"from"`
	Until     time.Time `json:"until"`
	LastAudit time.Time `json:"last_audit"`
}

// SealingKey is a tenant's public key for end-to-end sealing. A tenant
// rotating keys lists the old and the new key; senders seal to the newest
// key valid at the time, and the tenant keeps the old private key to open
// what was sealed to it.
type SealingKey struct {
	ID     string `json:"id"`
	KEM    uint16 `json:"kem"`
	Public string `json:"public"` // base64 of the KEM's serialized public key
	// NotBefore and NotAfter bound when senders may seal to the key; zero
	// means unbounded.
	NotBefore time.Time `json:"not_before,omitzero"`
	NotAfter  time.Time `json:"not_after,omitzero"`
}

// Type is a notification type and its limits.
type Type struct {
	Name         string   `json:"name"`
	ContentTypes []string `json:"content_types"`
	MaxSize      int64    `json:"max_size"` // plaintext bytes
}

// Rule allows participants of kind From to send the listed Types to
// participants of kind To.
type Rule struct {
	From  string   `json:"from"`
	To    []string `json:"to"`
	Types []string `json:"types"`
}

// Signed is the form in which a directory is stored and transferred.
type Signed struct {
	Body      []byte `json:"body"`      // the directory's JSON
	Signature []byte `json:"signature"` // ECDSA P-256 over SHA-256(domain || body)
}

const sigDomain = "taxlink/directory/v1\x00"

var kinds = []string{"nta", "prefecture", "municipality", "outsourcer"}

var nameRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)

var idRe = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// Sign serializes d and signs it with key. It validates d first.
func Sign(d *Directory, key crypto.Signer) ([]byte, error) {
	if err := d.index(); err != nil {
		return nil, err
	}
	body, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("directory: encode: %w", err)
	}
	digest := sha256.Sum256(append([]byte(sigDomain), body...))
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("directory: sign: %w", err)
	}
	return json.MarshalIndent(Signed{Body: body, Signature: sig}, "", "  ")
}

// Verify checks the signature of a signed directory with the directory key
// pub and returns the parsed, validated directory. wantEnv, if not empty,
// must equal the directory's environment.
func Verify(doc []byte, pub *ecdsa.PublicKey, wantEnv string) (*Directory, error) {
	if len(doc) > MaxSize {
		return nil, fmt.Errorf("%w: document is %d bytes, limit %d", ErrInvalid, len(doc), MaxSize)
	}
	var s Signed
	if err := strictJSON(doc, &s); err != nil {
		return nil, fmt.Errorf("%w: signed document: %v", ErrInvalid, err)
	}
	digest := sha256.Sum256(append([]byte(sigDomain), s.Body...))
	if !ecdsa.VerifyASN1(pub, digest[:], s.Signature) {
		return nil, ErrBadSignature
	}
	var d Directory
	if err := strictJSON(s.Body, &d); err != nil {
		return nil, fmt.Errorf("%w: body: %v", ErrInvalid, err)
	}
	if err := d.index(); err != nil {
		return nil, err
	}
	if wantEnv != "" && d.Environment != wantEnv {
		return nil, fmt.Errorf("%w: directory is for environment %q, this process runs in %q", ErrInvalid, d.Environment, wantEnv)
	}
	return &d, nil
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// index validates d and builds its lookup tables.
func (d *Directory) index() error {
	if d.Version == 0 {
		return invalid("version must be at least 1")
	}
	if !slices.Contains([]string{"production", "test", "dev"}, d.Environment) {
		return invalid("environment %q: expected production, test or dev", d.Environment)
	}
	if err := envelope.ValidParticipantID(d.Hub.ID); err != nil || d.Hub.ID[:4] != "hub:" {
		return invalid("hub.id %q: expected hub:NAME", d.Hub.ID)
	}
	if err := checkEndpoint(d.Hub.Endpoint); err != nil {
		return invalid("hub.endpoint: %v", err)
	}
	k, err := pki.ParsePublicKeyPEM(d.Hub.SigningKey)
	if err != nil {
		return invalid("hub.signing_key: %v", err)
	}
	d.Hub.signingKey = k

	d.participants = make(map[string]*Participant, len(d.Participants))
	for i := range d.Participants {
		p := &d.Participants[i]
		if err := envelope.ValidParticipantID(p.ID); err != nil {
			return invalid("participants[%d].id: %v", i, err)
		}
		if _, dup := d.participants[p.ID]; dup {
			return invalid("participants[%d].id %s: listed twice", i, p.ID)
		}
		if !slices.Contains(kinds, p.Kind) {
			return invalid("participants[%d].kind %q: expected one of %v", i, p.Kind, kinds)
		}
		if p.Kind == "outsourcer" {
			c := p.Certification
			if c == nil || c.From.IsZero() || c.Until.IsZero() || !c.Until.After(c.From) {
				return invalid("participants[%d] (%s): an outsourcer needs a certification with from < until", i, p.ID)
			}
		} else if p.Certification != nil {
			return invalid("participants[%d] (%s): only outsourcers are certified", i, p.ID)
		}
		keyIDs := map[string]bool{}
		for j, sk := range p.SealingKeys {
			if keyIDs[sk.ID] {
				return invalid("participants[%d].sealing_keys[%d].id %q: listed twice", i, j, sk.ID)
			}
			keyIDs[sk.ID] = true
			if !sk.NotAfter.IsZero() && !sk.NotAfter.After(sk.NotBefore) {
				return invalid("participants[%d].sealing_keys[%d]: not_after must follow not_before", i, j)
			}
			raw, err := base64.StdEncoding.DecodeString(sk.Public)
			if err != nil {
				return invalid("participants[%d].sealing_keys[%d].public: not base64", i, j)
			}
			if _, err := envelope.ParsePublicKey(sk.KEM, raw); err != nil {
				return invalid("participants[%d].sealing_keys[%d]: %v", i, j, err)
			}
			if sk.ID == "" {
				return invalid("participants[%d].sealing_keys[%d].id: empty", i, j)
			}
		}
		p.parsed = &parsedKeys{}
		d.participants[p.ID] = p
	}

	d.nodes = make(map[string]*Node, len(d.Nodes))
	d.hostedBy = make(map[string]*Node)
	for i := range d.Nodes {
		n := &d.Nodes[i]
		if err := envelope.ValidParticipantID(n.ID); err != nil {
			return invalid("nodes[%d].id: %v", i, err)
		}
		if _, dup := d.nodes[n.ID]; dup {
			return invalid("nodes[%d].id %s: listed twice", i, n.ID)
		}
		if err := checkEndpoint(n.Endpoint); err != nil {
			return invalid("nodes[%d].endpoint: %v", i, err)
		}
		k, err := pki.ParsePublicKeyPEM(n.SigningKey)
		if err != nil {
			return invalid("nodes[%d].signing_key: %v", i, err)
		}
		n.signingKey = k
		if len(n.Tenants) == 0 {
			return invalid("nodes[%d] (%s): hosts no tenant", i, n.ID)
		}
		if n.Operator != "" {
			op, ok := d.participants[n.Operator]
			if !ok || op.Kind != "outsourcer" {
				return invalid("nodes[%d].operator %q: expected an outsourcer participant", i, n.Operator)
			}
		}
		for _, t := range n.Tenants {
			if _, ok := d.participants[t]; !ok {
				return invalid("nodes[%d] (%s): tenant %s is not a participant", i, n.ID, t)
			}
			if other, dup := d.hostedBy[t]; dup {
				return invalid("tenant %s hosted by both %s and %s", t, other.ID, n.ID)
			}
			d.hostedBy[t] = n
		}
		d.nodes[n.ID] = n
	}

	d.types = make(map[string]*Type, len(d.Types))
	for i := range d.Types {
		t := &d.Types[i]
		if !nameRe.MatchString(t.Name) {
			return invalid("types[%d].name %q: expected ^[a-z][a-z0-9-]{0,63}$", i, t.Name)
		}
		if t.MaxSize <= 0 {
			return invalid("types[%d].max_size: must be positive", i)
		}
		if len(t.ContentTypes) == 0 {
			return invalid("types[%d].content_types: empty", i)
		}
		d.types[t.Name] = t
	}
	if err := d.Window.validate(); err != nil {
		return err
	}
	if err := d.validateIncidents(); err != nil {
		return err
	}
	for i, r := range d.Policy {
		if !slices.Contains(kinds, r.From) {
			return invalid("policy[%d].from %q: expected one of %v", i, r.From, kinds)
		}
		for _, to := range r.To {
			if !slices.Contains(kinds, to) {
				return invalid("policy[%d].to %q: expected one of %v", i, to, kinds)
			}
		}
		for _, ty := range r.Types {
			if _, ok := d.types[ty]; !ok {
				return invalid("policy[%d]: type %q is not defined", i, ty)
			}
		}
	}
	return nil
}

func checkEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: expected https://HOST:PORT", s)
	}
	return nil
}

// HubKey returns the key that signs acceptance receipts.
func (d *Directory) HubKey() *ecdsa.PublicKey { return d.Hub.signingKey }

// Participant returns the participant with id.
func (d *Directory) Participant(id string) (*Participant, error) {
	p, ok := d.participants[id]
	if !ok {
		return nil, fmt.Errorf("%w participant %s", ErrUnknown, id)
	}
	return p, nil
}

// Node returns the node with id.
func (d *Directory) Node(id string) (*Node, error) {
	n, ok := d.nodes[id]
	if !ok {
		return nil, fmt.Errorf("%w node %s", ErrUnknown, id)
	}
	return n, nil
}

// HostOf returns the node that hosts participant id.
func (d *Directory) HostOf(id string) (*Node, error) {
	n, ok := d.hostedBy[id]
	if !ok {
		return nil, fmt.Errorf("%w: no node hosts %s", ErrUnknown, id)
	}
	return n, nil
}

// Hosts reports whether node nodeID hosts participant id.
func (d *Directory) Hosts(nodeID, id string) bool {
	n, ok := d.hostedBy[id]
	return ok && n.ID == nodeID
}

// Type returns the notification type called name.
func (d *Directory) Type(name string) (*Type, error) {
	t, ok := d.types[name]
	if !ok {
		return nil, fmt.Errorf("%w notification type %q", ErrUnknown, name)
	}
	return t, nil
}

// Allowed reports whether the policy lets from send typ to to. It denies
// anything no rule allows.
func (d *Directory) Allowed(from, to *Participant, typ string) bool {
	for _, r := range d.Policy {
		if r.From == from.Kind && slices.Contains(r.To, to.Kind) && slices.Contains(r.Types, typ) {
			return true
		}
	}
	return false
}

// Key returns the key with which node n signs envelopes and receipts.
func (n *Node) Key() *ecdsa.PublicKey { return n.signingKey }

// SealingKeyAt returns the key senders must seal to at time now: the last
// listed key whose validity covers now.
func (p *Participant) SealingKeyAt(now time.Time) (SealingKey, error) {
	for i := len(p.SealingKeys) - 1; i >= 0; i-- {
		k := p.SealingKeys[i]
		if (k.NotBefore.IsZero() || !now.Before(k.NotBefore)) && (k.NotAfter.IsZero() || now.Before(k.NotAfter)) {
			return k, nil
		}
	}
	return SealingKey{}, fmt.Errorf("%w: %s has no sealing key valid at %s", ErrUnknown, p.ID, now.UTC().Format(time.RFC3339))
}

// Certified reports whether node n may receive at time now: it is run by
// its tenants themselves, or by an outsourcer whose certification covers now.
func (d *Directory) Certified(n *Node, now time.Time) error {
	if n.Operator == "" {
		return nil
	}
	op := d.participants[n.Operator]
	c := op.Certification
	switch {
	case now.Before(c.From):
		return fmt.Errorf("certification of %s starts %s", op.ID, c.From.Format(time.DateOnly))
	case !now.Before(c.Until):
		return fmt.Errorf("certification of %s lapsed %s", op.ID, c.Until.Format(time.DateOnly))
	}
	return nil
}

// Recipients returns the IDs of every participant hosted by some node, in
// directory order.
func (d *Directory) Recipients() []string {
	var ids []string
	for _, n := range d.Nodes {
		ids = append(ids, n.Tenants...)
	}
	return ids
}

// Identity returns the hub's expected TLS identity in environment env.
func (h Hub) Identity(env string) pki.Identity { return pki.Identity{Env: env, ID: h.ID} }
