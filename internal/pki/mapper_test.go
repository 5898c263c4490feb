package pki

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// lgRulesJSON maps certificates of the fake LGPKI CA, identified by DN, to
// lg:<6-digit local government code> taken from the OU.
func lgRulesJSON(issuerDN string) string {
	return `{"rules": [{
		"name": "lgpki-ou",
		"issuer_dn": ` + jsonString(issuerDN) + `,
		"attribute": "OU",
		"match": "LG([0-9]{6})",
		"id": "lg:{1}",
		"environment": "test"
	}]}`
}

// jsonString quotes s for JSON (test DNs hold no characters needing
// escapes beyond quotes and backslashes).
func jsonString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func TestParseMappingRules(t *testing.T) {
	good := `{"rules": [
		{"name": "by-dn", "issuer_dn": "CN=CA,C=JP", "attribute": "OU", "match": "LG([0-9]{6})", "id": "lg:{1}", "environment": "production"},
		{"name": "by-key", "issuer_key_id": "A1:B2:C3", "attribute": "serialNumber", "match": "([0-9]{13})", "id": "corp:{1}", "environment": "test"},
		{"name": "fixed", "issuer_key_id": "a1b2c3", "issuer_dn": "CN=CA,C=JP", "attribute": "CN", "match": "National Tax Agency", "id": "nta:hq", "environment": "dev"}
	]}`
	rules, err := ParseMappingRules([]byte(good))
	if err != nil {
		t.Fatalf("ParseMappingRules(good): %v", err)
	}
	if len(rules) != 3 || rules[1].IssuerKeyID != "A1:B2:C3" || rules[2].ID != "nta:hq" {
		t.Errorf("parsed rules %+v", rules)
	}

	rule := func(fields string) string {
		return `{"rules": [{` + fields + `}]}`
	}
	const base = `"name": "r", "issuer_dn": "CN=CA", "attribute": "OU", "match": "([0-9]+)", "environment": "test"`
	bad := []struct {
		name string
		doc  string
		msg  string
	}{
		{"empty document", ``, ""},
		{"no rules", `{"rules": []}`, "no rules"},
		{"unknown member", rule(base + `, "id": "lg:{1}", "extra": 1`), "unknown field"},
		{"duplicate member", rule(base + `, "id": "lg:{1}", "id": "hub:{1}"`), "duplicate member"},
		{"trailing data", rule(base+`, "id": "lg:{1}"`) + ` {}`, "trailing data"},
		{"no name", rule(`"issuer_dn": "CN=CA", "attribute": "OU", "match": "([0-9]+)", "id": "lg:{1}", "environment": "test"`), "name is empty"},
		{"duplicate name", `{"rules": [{` + base + `, "id": "lg:{1}"}, {` + base + `, "id": "lg:{1}"}]}`, "used twice"},
		{"no issuer", rule(`"name": "r", "attribute": "OU", "match": "([0-9]+)", "id": "lg:{1}", "environment": "test"`), "neither issuer_key_id nor issuer_dn"},
		{"bad key id", rule(`"name": "r", "issuer_key_id": "xyz", "attribute": "OU", "match": "([0-9]+)", "id": "lg:{1}", "environment": "test"`), "not a hex key identifier"},
		{"DN with whitespace", rule(`"name": "r", "issuer_dn": " CN=CA", "attribute": "OU", "match": "([0-9]+)", "id": "lg:{1}", "environment": "test"`), "whitespace"},
		{"unknown attribute", rule(`"name": "r", "issuer_dn": "CN=CA", "attribute": "emailAddress", "match": "([0-9]+)", "id": "lg:{1}", "environment": "test"`), "attribute"},
		{"lower-case attribute", rule(`"name": "r", "issuer_dn": "CN=CA", "attribute": "ou", "match": "([0-9]+)", "id": "lg:{1}", "environment": "test"`), "attribute"},
		{"empty match", rule(`"name": "r", "issuer_dn": "CN=CA", "attribute": "OU", "match": "", "id": "lg:{1}", "environment": "test"`), "match is empty"},
		{"bad regexp", rule(`"name": "r", "issuer_dn": "CN=CA", "attribute": "OU", "match": "([0-9]+", "id": "lg:{1}", "environment": "test"`), "match"},
		{"kind from the certificate", rule(base + `, "id": "{1}:x"`), "literal kind"},
		{"no kind", rule(base + `, "id": "{1}"`), "literal kind"},
		{"unknown kind", rule(base + `, "id": "city:{1}"`), "unknown kind"},
		{"nothing after kind", rule(base + `, "id": "lg:"`), "nothing after the kind"},
		{"group out of range", rule(base + `, "id": "lg:{2}"`), "refers to a group"},
		{"named group reference", rule(base + `, "id": "lg:{code}"`), "not a group number"},
		{"unterminated brace", rule(base + `, "id": "lg:{1"`), "unterminated"},
		{"stray closing brace", rule(base + `, "id": "lg:1}"`), "unmatched"},
		{"bad environment", rule(`"name": "r", "issuer_dn": "CN=CA", "attribute": "OU", "match": "([0-9]+)", "id": "lg:{1}", "environment": "staging"`), "unknown environment"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseMappingRules([]byte(tc.doc))
			if !errors.Is(err, ErrInvalidMappingRule) {
				t.Fatalf("ParseMappingRules = %v, want ErrInvalidMappingRule", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestRuleMapper(t *testing.T) {
	now := time.Now()
	taxCA := mustCA(t, "taxlink test CA", now)
	lg := mustExternalCA(t, lgpkiName(), now)
	gpkiName := lgpkiName()
	gpkiName.OrganizationalUnit = []string{"GPKI"}
	gpki := mustExternalCA(t, gpkiName, now) // an external CA no rule names
	lgDN, err := SubjectDN(lg.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if lgDN != "CN=Application CA2 (fake\\, for tests),OU=LGPKI,O=Japanese Government,C=JP" {
		t.Fatalf("SubjectDN = %q", lgDN)
	}
	rules, err := ParseMappingRules([]byte(lgRulesJSON(lgDN)))
	if err != nil {
		t.Fatal(err)
	}
	// A second rule, by key identifier, mapping corporations by serialNumber.
	rules = append(rules, MappingRule{
		Name: "lgpki-corp", IssuerKeyID: strings.ToUpper(hex.EncodeToString(lg.Cert.SubjectKeyId)),
		Attribute: AttrSerialNumber, Match: "C([0-9]{13})", ID: "corp:{1}", Environment: EnvTest,
	})
	withFallback, err := NewRuleMapper(rules, URIMapper{})
	if err != nil {
		t.Fatal(err)
	}
	strict, err := NewRuleMapper(rules, nil)
	if err != nil {
		t.Fatal(err)
	}

	const person = "Yamada Taro" // personal data that must never reach an error
	subj := func(ous []string, serial string) pkix.Name {
		return pkix.Name{Country: []string{"JP"}, Organization: []string{"Sapporo-shi"}, OrganizationalUnit: ous, SerialNumber: serial, CommonName: person}
	}
	taxLeaf := mustLeaf(t, taxCA, Identity{Env: EnvTest, ID: "lg:011002"}, false, true, now)

	tests := []struct {
		name    string
		mapper  *RuleMapper
		chain   []*x509.Certificate
		want    Identity
		wantErr error
	}{
		{"external certificate mapped by OU", withFallback,
			[]*x509.Certificate{externalLeaf(t, lg, subj([]string{"LG011002"}, ""), now).Leaf, lg.Cert},
			Identity{Env: EnvTest, ID: "lg:011002"}, nil},
		{"one of several OUs matches", strict,
			[]*x509.Certificate{externalLeaf(t, lg, subj([]string{"Tax Division", "LG131016"}, ""), now).Leaf, lg.Cert},
			Identity{Env: EnvTest, ID: "lg:131016"}, nil},
		{"external certificate mapped by serialNumber (key identifier rule)", strict,
			[]*x509.Certificate{externalLeaf(t, lg, subj(nil, "C1234567890123"), now).Leaf, lg.Cert},
			Identity{Env: EnvTest, ID: "corp:1234567890123"}, nil},
		{"repeated OU with the same value", strict,
			[]*x509.Certificate{externalLeaf(t, lg, subj([]string{"LG011002", "LG011002"}, ""), now).Leaf, lg.Cert},
			Identity{Env: EnvTest, ID: "lg:011002"}, nil},
		{"two rules disagree", strict,
			[]*x509.Certificate{externalLeaf(t, lg, subj([]string{"LG011002"}, "C1234567890123"), now).Leaf, lg.Cert},
			Identity{}, ErrAmbiguousIdentity},
		{"two OUs disagree", strict,
			[]*x509.Certificate{externalLeaf(t, lg, subj([]string{"LG011002", "LG131016"}, ""), now).Leaf, lg.Cert},
			Identity{}, ErrAmbiguousIdentity},
		{"external certificate matching no rule", withFallback,
			[]*x509.Certificate{externalLeaf(t, lg, subj([]string{"Tax Division"}, ""), now).Leaf, lg.Cert},
			Identity{}, ErrUnmappedCertificate},
		{"partial match is no match", withFallback,
			[]*x509.Certificate{externalLeaf(t, lg, subj([]string{"LG0110021"}, ""), now).Leaf, lg.Cert},
			Identity{}, ErrUnmappedCertificate},
		{"external certificate asserting a taxlink SAN never reaches the fallback", withFallback,
			[]*x509.Certificate{externalLeaf(t, lg, subj([]string{"Tax Division"}, ""), now, "taxlink://test/hub:kiko").Leaf, lg.Cert},
			Identity{}, ErrUnmappedCertificate},
		{"taxlink certificate through the fallback", withFallback,
			[]*x509.Certificate{taxLeaf.Leaf, taxCA.Cert},
			Identity{Env: EnvTest, ID: "lg:011002"}, nil},
		{"taxlink certificate without fallback", strict,
			[]*x509.Certificate{taxLeaf.Leaf, taxCA.Cert},
			Identity{}, ErrUnmappedCertificate},
		{"certificate of an external CA no rule names", withFallback,
			[]*x509.Certificate{externalLeaf(t, gpki, subj([]string{"LG011002"}, ""), now).Leaf, gpki.Cert},
			Identity{}, ErrNoIdentity},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, how := range []string{"MapChain", "Map"} {
				var (
					got Identity
					err error
				)
				if how == "MapChain" {
					got, err = tc.mapper.MapChain(tc.chain)
				} else {
					got, err = tc.mapper.Map(tc.chain[0])
				}
				if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) || got != tc.want {
					t.Errorf("%s = %+v, %v; want %+v, %v", how, got, err, tc.want, tc.wantErr)
				}
				assertNoSubjectLeak(t, err, person, "Sapporo-shi", "Tax Division")
			}
		})
	}

	// A leaf whose authority key identifier names a rule's CA is treated
	// as external even if the chain shows another issuer: it never reaches
	// the fallback.
	odd := []*x509.Certificate{externalLeaf(t, lg, subj([]string{"LG011002"}, ""), now, "taxlink://test/hub:kiko").Leaf, taxCA.Cert}
	if id, err := withFallback.MapChain(odd); !errors.Is(err, ErrUnmappedCertificate) {
		t.Errorf("MapChain(leaf claiming an external issuer) = %v, %v; want ErrUnmappedCertificate", id, err)
	}

	// A rule yielding an invalid participant ID refuses the certificate.
	loose, err := NewRuleMapper([]MappingRule{{Name: "loose", IssuerDN: lgDN, Attribute: AttrCommonName, Match: "(.*)", ID: "lg:{1}", Environment: EnvTest}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loose.MapChain([]*x509.Certificate{externalLeaf(t, lg, subj(nil, ""), now).Leaf, lg.Cert}); !errors.Is(err, ErrInvalidIdentity) {
		t.Errorf("rule producing %q: %v, want ErrInvalidIdentity", "lg:"+person, err)
	}
	if _, err := NewRuleMapper(nil, URIMapper{}); !errors.Is(err, ErrInvalidMappingRule) {
		t.Errorf("NewRuleMapper(no rules) = %v, want ErrInvalidMappingRule", err)
	}
}

func TestExternalCAHandshake(t *testing.T) {
	now := time.Now()
	taxCA := mustCA(t, "taxlink test CA", now)
	lg := mustExternalCA(t, lgpkiName(), now)
	lgDN, err := SubjectDN(lg.Cert)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := ParseMappingRules([]byte(lgRulesJSON(lgDN)))
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := NewRuleMapper(rules, URIMapper{})
	if err != nil {
		t.Fatal(err)
	}
	hubID := Identity{Env: EnvTest, ID: "hub:kiko"}
	pool := CertPool(taxCA.Cert, lg.Cert)
	hub := mustLeaf(t, taxCA, hubID, true, false, now)
	srvCfg, err := ServerConfigWith(hub, pool, EnvTest, WithIdentityMapper(mapper))
	if err != nil {
		t.Fatalf("ServerConfigWith: %v", err)
	}
	url, logs := startServerMapped(t, srvCfg, mapper)
	subject := func(ou string) pkix.Name {
		return pkix.Name{Country: []string{"JP"}, Organization: []string{"Sapporo-shi"}, OrganizationalUnit: []string{ou}, CommonName: "Sapporo-shi tax system"}
	}

	// clientCfg builds a client presenting cert. ClientConfig would refuse
	// a certificate of an external CA as its own (a taxlink node always
	// has a taxlink certificate), so it is installed afterwards.
	clientCfg := func(t *testing.T, cert tls.Certificate) *tls.Config {
		t.Helper()
		cfg, err := ClientConfig(mustLeaf(t, taxCA, Identity{Env: EnvTest, ID: "lg:011002"}, false, true, now), pool, hubID)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = nil
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		return cfg
	}

	accepted := []struct {
		name string
		cert tls.Certificate
		want string
	}{
		{"LGPKI certificate mapped by its OU", externalLeaf(t, lg, subject("LG011002"), now), "taxlink://test/lg:011002"},
		{"taxlink certificate through the fallback", mustLeaf(t, taxCA, Identity{Env: EnvTest, ID: "corp:1234567890123"}, false, true, now), "taxlink://test/corp:1234567890123"},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, err := get(t, clientCfg(t, tc.cert), url)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if resp.StatusCode != http.StatusOK || body != tc.want {
				t.Errorf("status %d, server saw %q; want 200 %q", resp.StatusCode, body, tc.want)
			}
		})
	}

	refused := []struct {
		name      string
		cert      tls.Certificate
		serverLog string
	}{
		{"LGPKI certificate matching no rule", externalLeaf(t, lg, subject("Tax Division"), now), ErrUnmappedCertificate.Error()},
		{"LGPKI certificate asserting a taxlink hub identity", externalLeaf(t, lg, subject("Tax Division"), now, "taxlink://test/hub:kiko"), ErrUnmappedCertificate.Error()},
		{"LGPKI certificate mapped to another environment", externalLeaf(t, lg, subject("LG011002"), now), ""},
	}
	// The last case runs against a production server with the same rules.
	for _, tc := range refused[:2] {
		t.Run(tc.name, func(t *testing.T) {
			if resp, body, err := get(t, clientCfg(t, tc.cert), url); err == nil {
				t.Fatalf("accepted (status %d, body %q); want the handshake refused", resp.StatusCode, body)
			}
			logs.await(t, tc.serverLog)
		})
	}
	t.Run(refused[2].name, func(t *testing.T) {
		prodHub := mustLeaf(t, taxCA, Identity{Env: EnvProduction, ID: "hub:kiko"}, true, false, now)
		cfg, err := ServerConfigWith(prodHub, pool, EnvProduction, WithIdentityMapper(mapper))
		if err != nil {
			t.Fatal(err)
		}
		prodURL, prodLogs := startServerMapped(t, cfg, mapper)
		cc := clientCfg(t, refused[2].cert)
		cc.VerifyConnection = nil // the client wants a test hub; only the server's decision matters here
		if _, _, err := get(t, cc, prodURL); err == nil {
			t.Fatal("test-environment mapping accepted by a production server")
		}
		prodLogs.await(t, ErrWrongEnvironment.Error())
	})

	t.Run("without a mapper the LGPKI certificate has no identity", func(t *testing.T) {
		cfg, err := ServerConfig(hub, pool, EnvTest)
		if err != nil {
			t.Fatal(err)
		}
		plainURL, plainLogs := startServer(t, cfg)
		if _, _, err := get(t, clientCfg(t, externalLeaf(t, lg, subject("LG011002"), now)), plainURL); err == nil {
			t.Fatal("LGPKI certificate accepted without a mapper")
		}
		plainLogs.await(t, ErrNoIdentity.Error())
	})

	t.Run("client maps an LGPKI server", func(t *testing.T) {
		// A local government's server holding only an LGPKI certificate.
		lgServer := externalLeaf(t, lg, subject("LG011002"), now)
		cfg := &tls.Config{
			MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS13,
			Certificates: []tls.Certificate{lgServer},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
		}
		lgURL, _ := startServer(t, cfg)
		own := mustLeaf(t, taxCA, Identity{Env: EnvTest, ID: "hub:kiko"}, false, true, now)
		for _, tc := range []struct {
			want    Identity
			wantErr error
		}{
			{Identity{Env: EnvTest, ID: "lg:011002"}, nil},
			{Identity{Env: EnvTest, ID: "lg:131016"}, ErrIdentityMismatch},
		} {
			cc, err := ClientConfigWith(own, pool, tc.want, WithIdentityMapper(mapper))
			if err != nil {
				t.Fatal(err)
			}
			resp, _, err := get(t, cc, lgURL)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("want %s: %v, want %v", tc.want, err, tc.wantErr)
			}
			if err == nil {
				if id, err := PeerIdentityWith(resp.TLS, mapper); err != nil || id != tc.want {
					t.Errorf("PeerIdentityWith = %v, %v; want %v", id, err, tc.want)
				}
				if _, err := PeerIdentity(resp.TLS); !errors.Is(err, ErrNoIdentity) {
					t.Errorf("PeerIdentity (unmapped) = %v, want ErrNoIdentity", err)
				}
			}
		}
	})
}
