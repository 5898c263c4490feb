package directory_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"taxlink/internal/directory"
	"taxlink/internal/envelope"
	"taxlink/internal/pki"
)

// sample returns a small valid directory.
func sample(t *testing.T) *directory.Directory {
	t.Helper()
	k := newKey(t)
	sealing, err := envelope.GenerateSealingKey(envelope.DefaultKEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := envelope.MarshalPublicKey(sealing.PublicKey())
	sk := []directory.SealingKey{{ID: "k1", KEM: envelope.DefaultKEM, Public: base64.StdEncoding.EncodeToString(pub)}}
	return &directory.Directory{
		Version: 3, Environment: "test", Issued: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Hub: directory.Hub{ID: "hub:kiko", Endpoint: "https://127.0.0.1:7000", SigningKey: k.pem},
		Nodes: []directory.Node{
			{ID: "nta:hq", Name: "国税庁", Endpoint: "https://127.0.0.1:7001", SigningKey: k.pem, Tenants: []string{"nta:hq"}},
			{ID: "corp:8700150012345", Name: "委託先", Endpoint: "https://127.0.0.1:7002", SigningKey: k.pem, Tenants: []string{"lg:013030", "lg:013315"}, Operator: "corp:8700150012345"},
		},
		Participants: []directory.Participant{
			{ID: "nta:hq", Name: "国税庁", Kind: "nta"},
			{ID: "lg:013030", Name: "当別町", Kind: "municipality", SealingKeys: sk},
			{ID: "lg:013315", Name: "松前町", Kind: "municipality", SealingKeys: sk},
			{ID: "corp:8700150012345", Name: "委託先", Kind: "outsourcer", Certification: &directory.Certification{
				From: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2027, 4, 1, 0, 0, 0, 0, time.UTC), LastAudit: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
			}},
		},
		Types:  []directory.Type{{Name: "income-tax-return", ContentTypes: []string{"application/xml"}, MaxSize: 1 << 20}},
		Policy: []directory.Rule{{From: "nta", To: []string{"municipality"}, Types: []string{"income-tax-return"}}},
	}
}

type pkiKey struct{ pem string }

// newKey returns the PEM public key of a fresh signing key.
func newKey(t *testing.T) pkiKey {
	t.Helper()
	k, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	p, err := pki.MarshalPublicKeyPEM(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pkiKey{pem: p}
}

func TestSignVerifyAndLookups(t *testing.T) {
	d := sample(t)
	key, _ := pki.NewKey()
	doc, err := directory.Sign(d, key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := directory.Verify(doc, &key.PublicKey, "test")
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !got.Hosts("corp:8700150012345", "lg:013315") || got.Hosts("nta:hq", "lg:013315") {
		t.Errorf("Hosts answers wrong")
	}
	nta, _ := got.Participant("nta:hq")
	town, _ := got.Participant("lg:013030")
	if !got.Allowed(nta, town, "income-tax-return") {
		t.Errorf("policy denies what a rule allows")
	}
	if got.Allowed(town, nta, "income-tax-return") {
		t.Errorf("policy allows what no rule allows (deny by default)")
	}
	if _, err := got.Type("corporate-tax"); !errors.Is(err, directory.ErrUnknown) {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := got.HostOf("lg:011002"); !errors.Is(err, directory.ErrUnknown) {
		t.Errorf("unhosted participant: %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	d := sample(t)
	key, _ := pki.NewKey()
	other, _ := pki.NewKey()
	doc, err := directory.Sign(d, key)
	if err != nil {
		t.Fatal(err)
	}
	var s directory.Signed
	if err := json.Unmarshal(doc, &s); err != nil {
		t.Fatal(err)
	}
	tampered := s
	tampered.Body = bytes.Replace(s.Body, []byte(`"version": 3`), []byte(`"version": 4`), 1)
	tamperedDoc, _ := json.Marshal(tampered)

	if _, err := directory.Verify(doc, &other.PublicKey, ""); !errors.Is(err, directory.ErrBadSignature) {
		t.Errorf("another key: %v, want ErrBadSignature", err)
	}
	if _, err := directory.Verify(tamperedDoc, &key.PublicKey, ""); !errors.Is(err, directory.ErrBadSignature) {
		t.Errorf("tampered body: %v, want ErrBadSignature", err)
	}
	if _, err := directory.Verify(doc, &key.PublicKey, "production"); !errors.Is(err, directory.ErrInvalid) || !strings.Contains(err.Error(), "environment") {
		t.Errorf("test directory in production: %v", err)
	}
	if _, err := directory.Verify([]byte("{"), &key.PublicKey, ""); !errors.Is(err, directory.ErrInvalid) {
		t.Errorf("garbage: %v", err)
	}
}

func TestSignRefusesInvalid(t *testing.T) {
	key, _ := pki.NewKey()
	cases := []struct {
		name, want string
		mutate     func(d *directory.Directory)
	}{
		{"version 0", "version", func(d *directory.Directory) { d.Version = 0 }},
		{"environment", "environment", func(d *directory.Directory) { d.Environment = "staging" }},
		{"hub id", "hub.id", func(d *directory.Directory) { d.Hub.ID = "nta:hq" }},
		{"endpoint not https", "endpoint", func(d *directory.Directory) { d.Nodes[0].Endpoint = "http://x:1" }},
		{"bad check digit", "check digit", func(d *directory.Directory) { d.Participants[1].ID = "lg:013031" }},
		{"tenant not a participant", "not a participant", func(d *directory.Directory) { d.Nodes[1].Tenants = append(d.Nodes[1].Tenants, "lg:011002") }},
		{"tenant hosted twice", "hosted by both", func(d *directory.Directory) { d.Nodes[0].Tenants = append(d.Nodes[0].Tenants, "lg:013030") }},
		{"unknown kind", "kind", func(d *directory.Directory) { d.Participants[0].Kind = "ministry" }},
		{"policy names undefined type", "not defined", func(d *directory.Directory) { d.Policy[0].Types = []string{"x"} }},
		{"bad sealing key", "sealing_keys", func(d *directory.Directory) { d.Participants[1].SealingKeys[0].Public = "AAAA" }},
		{"bad signing key", "signing_key", func(d *directory.Directory) { d.Nodes[0].SigningKey = "nope" }},
		{"outsourcer without certification", "certification", func(d *directory.Directory) { d.Participants[3].Certification = nil }},
		{"operator not an outsourcer", "operator", func(d *directory.Directory) { d.Nodes[1].Operator = "nta:hq" }},
		{"sealing key id twice", "listed twice", func(d *directory.Directory) {
			d.Participants[1].SealingKeys = append(d.Participants[1].SealingKeys, d.Participants[1].SealingKeys[0])
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := sample(t)
			tc.mutate(d)
			_, err := directory.Sign(d, key)
			if !errors.Is(err, directory.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
}

func TestCertifiedAndKeyRotation(t *testing.T) {
	d := sample(t)
	key, _ := pki.NewKey()
	doc, _ := directory.Sign(d, key)
	got, err := directory.Verify(doc, &key.PublicKey, "")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := got.Node("corp:8700150012345")
	for _, c := range []struct {
		at time.Time
		ok bool
	}{
		{time.Date(2026, 3, 31, 23, 0, 0, 0, time.UTC), false},
		{time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), true},
		{time.Date(2027, 4, 1, 0, 0, 0, 0, time.UTC), false},
	} {
		if err := got.Certified(n, c.at); (err == nil) != c.ok {
			t.Errorf("Certified at %s = %v, want ok=%v", c.at, err, c.ok)
		}
	}
	nta, _ := got.Node("nta:hq")
	if err := got.Certified(nta, time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Errorf("a self-run node needs no certification: %v", err)
	}

	p := &directory.Participant{ID: "lg:013030", SealingKeys: []directory.SealingKey{
		{ID: "old", NotAfter: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{ID: "new", NotBefore: time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)},
	}}
	for at, want := range map[time.Time]string{
		time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC):  "old",
		time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC): "new",
		time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC):   "new",
	} {
		k, err := p.SealingKeyAt(at)
		if err != nil || k.ID != want {
			t.Errorf("SealingKeyAt(%s) = %q, %v; want %q", at, k.ID, err, want)
		}
	}
}

func TestHolder(t *testing.T) {
	key, _ := pki.NewKey()
	d := sample(t)
	sign := func(version uint64, env string) []byte {
		d.Version, d.Environment = version, env
		doc, err := directory.Sign(d, key)
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}
	path := filepath.Join(t.TempDir(), "directory.json")
	v3 := sign(3, "test")
	if err := os.WriteFile(path, v3, 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := directory.NewHolder(path, &key.PublicKey, "test")
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := h.Update(v3); changed || err != nil {
		t.Errorf("same version: changed=%v err=%v", changed, err)
	}
	if _, err := h.Update(sign(2, "test")); !errors.Is(err, directory.ErrRollback) {
		t.Errorf("older version: %v, want ErrRollback", err)
	}
	if _, err := h.Update(sign(4, "production")); !errors.Is(err, directory.ErrInvalid) {
		t.Errorf("other environment: %v, want ErrInvalid", err)
	}
	d.Types[0].MaxSize++
	if _, err := h.Update(sign(3, "test")); !errors.Is(err, directory.ErrInvalid) {
		t.Errorf("same version, other content: %v", err)
	}
	v5 := sign(5, "test")
	if changed, err := h.Update(v5); !changed || err != nil || h.Get().Version != 5 {
		t.Fatalf("newer version: changed=%v err=%v version %d", changed, err, h.Get().Version)
	}
	onDisk, _ := os.ReadFile(path)
	if !bytes.Equal(onDisk, v5) {
		t.Errorf("the last good copy on disk is not version 5")
	}
	h2, err := directory.NewHolder(path, &key.PublicKey, "test")
	if err != nil || h2.Get().Version != 5 {
		t.Errorf("restart from the last good copy: %v", err)
	}
}

// TestPublicKey checks the parsed sealing keys: a participant of a
// verified directory gives back the key its encoding holds, parsed once;
// a directory that replaces it parses afresh; a participant outside a
// directory parses each time and refuses a bad encoding with ErrBadKey.
func TestPublicKey(t *testing.T) {
	d := sample(t)
	key, _ := pki.NewKey()
	doc, err := directory.Sign(d, key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := directory.Verify(doc, &key.PublicKey, "test")
	if err != nil {
		t.Fatal(err)
	}
	town, _ := got.Participant("lg:013030")
	sk, err := town.SealingKeyAt(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := town.PublicKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	if raw, _ := envelope.MarshalPublicKey(pub); base64.StdEncoding.EncodeToString(raw) != sk.Public {
		t.Fatal("the parsed key is not the one encoded")
	}
	if again, _ := town.PublicKey(sk); again != pub {
		t.Error("the same key was parsed again")
	}
	replaced, err := directory.Verify(doc, &key.PublicKey, "test")
	if err != nil {
		t.Fatal(err)
	}
	town2, _ := replaced.Participant("lg:013030")
	if other, _ := town2.PublicKey(sk); other == pub {
		t.Error("a new directory handed out the parsed key of the one it replaced")
	}
	loose := &directory.Participant{ID: "lg:013030", SealingKeys: []directory.SealingKey{sk}}
	if p1, _ := loose.PublicKey(sk); p1 == nil || p1 == pub {
		t.Errorf("a participant outside a directory: %v, want a key parsed for it", p1)
	}
	for _, bad := range []string{"not base64!", base64.StdEncoding.EncodeToString([]byte("short"))} {
		k := sk
		k.Public = bad
		if _, err := loose.PublicKey(k); !errors.Is(err, envelope.ErrBadKey) {
			t.Errorf("PublicKey of %q: %v, want ErrBadKey", bad, err)
		}
	}
}
