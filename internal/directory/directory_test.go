package directory_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
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
			{ID: "corp:8700150012345", Name: "委託先", Endpoint: "https://127.0.0.1:7002", SigningKey: k.pem, Tenants: []string{"lg:013030", "lg:013315"}},
		},
		Participants: []directory.Participant{
			{ID: "nta:hq", Name: "国税庁", Kind: "nta"},
			{ID: "lg:013030", Name: "当別町", Kind: "municipality", SealingKeys: sk},
			{ID: "lg:013315", Name: "松前町", Kind: "municipality", SealingKeys: sk},
			{ID: "corp:8700150012345", Name: "委託先", Kind: "outsourcer"},
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
