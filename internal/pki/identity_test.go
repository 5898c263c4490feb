package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseIdentityURI(t *testing.T) {
	good := []struct {
		in  string
		env string
		id  string
	}{
		{"taxlink://test/lg:011002", "test", "lg:011002"},
		{"taxlink://test/hub:kiko", "test", "hub:kiko"},
		{"taxlink://production/nta:hq", "production", "nta:hq"},
		{"taxlink://test/corp:1234567890123", "test", "corp:1234567890123"},
		{"taxlink://dev/corp:A-b-9", "dev", "corp:A-b-9"},
		{"taxlink://dev/lg:" + strings.Repeat("x", 64), "dev", "lg:" + strings.Repeat("x", 64)},
	}
	for _, tc := range good {
		t.Run("good/"+tc.in, func(t *testing.T) {
			got, err := ParseIdentityURI(tc.in)
			if err != nil {
				t.Fatalf("ParseIdentityURI(%q) failed: %v", tc.in, err)
			}
			want := Identity{Env: tc.env, ID: tc.id}
			if got != want {
				t.Fatalf("ParseIdentityURI(%q) = %+v, want %+v", tc.in, got, want)
			}
			if got.String() != tc.in {
				t.Errorf("String() = %q, want round trip to %q", got.String(), tc.in)
			}
			if u := got.URI().String(); u != tc.in {
				t.Errorf("URI().String() = %q, want %q", u, tc.in)
			}
		})
	}

	bad := []struct {
		name, in string
	}{
		{"empty", ""},
		{"other scheme", "https://test/lg:011002"},
		{"upper-case scheme", "TAXLINK://test/lg:011002"},
		{"opaque", "taxlink:test/lg:011002"},
		{"unknown env", "taxlink://staging/lg:011002"},
		{"upper-case env", "taxlink://TEST/lg:011002"},
		{"empty env", "taxlink:///lg:011002"},
		{"no path", "taxlink://test"},
		{"empty id", "taxlink://test/"},
		{"trailing slash", "taxlink://test/lg:011002/"},
		{"extra segment", "taxlink://test/lg:011002/x"},
		{"double slash", "taxlink://test//lg:011002"},
		{"unknown kind", "taxlink://test/city:011002"},
		{"upper-case kind", "taxlink://test/LG:011002"},
		{"no kind", "taxlink://test/011002"},
		{"empty value", "taxlink://test/lg:"},
		{"value too long", "taxlink://test/lg:" + strings.Repeat("x", 65)},
		{"underscore", "taxlink://test/lg:011_002"},
		{"second colon", "taxlink://test/lg:01:1002"},
		{"non-ASCII", "taxlink://test/lg:東京"},
		{"space", "taxlink://test/lg:011 002"},
		{"query", "taxlink://test/lg:011002?x=1"},
		{"empty query", "taxlink://test/lg:011002?"},
		{"fragment", "taxlink://test/lg:011002#frag"},
		{"userinfo", "taxlink://user@test/lg:011002"},
		{"port", "taxlink://test:443/lg:011002"},
		{"empty port", "taxlink://test:/lg:011002"},
		{"percent-encoded colon", "taxlink://test/lg%3A011002"},
		{"percent-encoded env", "taxlink://t%65st/lg:011002"},
		{"leading space", " taxlink://test/lg:011002"},
		{"trailing newline", "taxlink://test/lg:011002\n"},
		{"huge", "taxlink://test/lg:" + strings.Repeat("x", 1000)},
	}
	for _, tc := range bad {
		t.Run("bad/"+tc.name, func(t *testing.T) {
			got, err := ParseIdentityURI(tc.in)
			if err == nil {
				t.Fatalf("ParseIdentityURI(%q) = %+v, want error", tc.in, got)
			}
			if !errors.Is(err, ErrInvalidIdentity) {
				t.Fatalf("ParseIdentityURI(%q) error %q does not wrap ErrInvalidIdentity", tc.in, err)
			}
			if got != (Identity{}) {
				t.Errorf("ParseIdentityURI(%q) returned non-zero identity %+v with its error", tc.in, got)
			}
		})
	}
}

func TestIdentityValidate(t *testing.T) {
	if err := (Identity{}).Validate(); !errors.Is(err, ErrInvalidIdentity) {
		t.Errorf("zero Identity.Validate() = %v, want ErrInvalidIdentity", err)
	}
	if err := (Identity{Env: "test", ID: "hub:kiko"}).Validate(); err != nil {
		t.Errorf("valid identity rejected: %v", err)
	}
}

func TestIdentityFromCert(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "taxlink test CA", now)
	tests := []struct {
		name    string
		uris    []string
		want    Identity
		wantErr error
	}{
		{"one identity", []string{"taxlink://test/lg:011002"}, Identity{"test", "lg:011002"}, nil},
		{"other URI schemes ignored", []string{"https://example.jp/x", "taxlink://dev/hub:kiko", "spiffe://a/b"}, Identity{"dev", "hub:kiko"}, nil},
		{"no URI SAN", nil, Identity{}, ErrNoIdentity},
		{"only other schemes", []string{"https://example.jp/x"}, Identity{}, ErrNoIdentity},
		{"two identities", []string{"taxlink://test/lg:011002", "taxlink://test/hub:kiko"}, Identity{}, ErrAmbiguousIdentity},
		{"same identity twice", []string{"taxlink://test/lg:011002", "taxlink://test/lg:011002"}, Identity{}, ErrAmbiguousIdentity},
		{"invalid identity", []string{"taxlink://staging/lg:011002"}, Identity{}, ErrInvalidIdentity},
		{"non-canonical identity", []string{"taxlink://test/lg%3A011002"}, Identity{}, ErrInvalidIdentity},
		{"identity with query", []string{"taxlink://test/lg:011002?a=b"}, Identity{}, ErrInvalidIdentity},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := rawLeaf(t, ca, now, tc.uris...).Leaf
			got, err := IdentityFromCert(c)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("IdentityFromCert(SANs %q) = %+v, %v; want error wrapping %v", tc.uris, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("IdentityFromCert(SANs %q) = %+v, %v; want %+v", tc.uris, got, err, tc.want)
			}
		})
	}
	if _, err := IdentityFromCert(nil); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("IdentityFromCert(nil) error = %v, want ErrNoIdentity", err)
	}
}

func TestPeerIdentityRequiresVerifiedChain(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "taxlink test CA", now)
	leaf := mustLeaf(t, ca, Identity{"test", "lg:011002"}, false, true, now).Leaf

	if _, err := PeerIdentity(nil); !errors.Is(err, ErrUnverifiedPeer) {
		t.Errorf("PeerIdentity(nil) error = %v, want ErrUnverifiedPeer", err)
	}
	// Peer certificates alone (as with InsecureSkipVerify) must not count.
	unverified := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
	if id, err := PeerIdentity(unverified); !errors.Is(err, ErrUnverifiedPeer) {
		t.Errorf("PeerIdentity(unverified peer) = %+v, %v; want ErrUnverifiedPeer", id, err)
	}
	verified := &tls.ConnectionState{
		PeerCertificates: []*x509.Certificate{leaf},
		VerifiedChains:   [][]*x509.Certificate{{leaf, ca.Cert}},
	}
	if id, err := PeerIdentity(verified); err != nil || id != (Identity{"test", "lg:011002"}) {
		t.Errorf("PeerIdentity(verified) = %+v, %v; want test/lg:011002", id, err)
	}
}
