package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Mapper derives a taxlink identity from a verified peer certificate. Map
// is called only after the certificate chain has been verified; it must
// return a valid Identity or an error, and must be safe for concurrent use.
type Mapper interface {
	Map(leaf *x509.Certificate) (Identity, error)
}

// ChainMapper is implemented by Mappers that decide with the whole
// verified chain (leaf first, then its issuer, up to the trust anchor).
// The TLS configurations and PeerIdentityWith call MapChain instead of Map
// when a Mapper implements it.
type ChainMapper interface {
	Mapper
	MapChain(chain []*x509.Certificate) (Identity, error)
}

// URIMapper is the default Mapper: the identity is the certificate's
// single taxlink URI SAN (see IdentityFromCert).
type URIMapper struct{}

// Map returns IdentityFromCert(leaf).
func (URIMapper) Map(leaf *x509.Certificate) (Identity, error) {
	return IdentityFromCert(leaf)
}

// mapChain maps a verified chain with m (nil: URIMapper) and validates the
// result.
func mapChain(m Mapper, chain []*x509.Certificate) (Identity, error) {
	if len(chain) == 0 || chain[0] == nil {
		return Identity{}, fmt.Errorf("%w: empty certificate chain", ErrUnverifiedPeer)
	}
	var (
		id  Identity
		err error
	)
	switch mm := m.(type) {
	case nil:
		id, err = IdentityFromCert(chain[0])
	case ChainMapper:
		id, err = mm.MapChain(chain)
	default:
		id, err = mm.Map(chain[0])
	}
	if err != nil {
		return Identity{}, err
	}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("mapper %T returned an invalid identity: %w", m, err)
	}
	return id, nil
}

// PeerIdentityWith is PeerIdentity for a configuration built with
// WithIdentityMapper(m): it maps the first verified chain of cs with m
// (nil: URIMapper, which makes it equal to PeerIdentity). The peer's
// unverified certificates are never consulted.
func PeerIdentityWith(cs *tls.ConnectionState, m Mapper) (Identity, error) {
	if cs == nil {
		return Identity{}, fmt.Errorf("%w: no TLS connection state", ErrUnverifiedPeer)
	}
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, fmt.Errorf("%w: no verified certificate chain", ErrUnverifiedPeer)
	}
	id, err := mapChain(m, cs.VerifiedChains[0])
	if err != nil {
		return Identity{}, fmt.Errorf("peer certificate: %w", err)
	}
	return id, nil
}

// Subject attributes a MappingRule may read (MappingRule.Attribute).
const (
	AttrCommonName         = "CN"
	AttrSerialNumber       = "serialNumber"
	AttrOrganization       = "O"
	AttrOrganizationalUnit = "OU"
	AttrLocality           = "L"
	AttrProvince           = "ST"
	AttrCountry            = "C"
)

// attributeOID returns the OID of a MappingRule attribute name.
func attributeOID(name string) (asn1.ObjectIdentifier, bool) {
	switch name {
	case AttrCommonName:
		return asn1.ObjectIdentifier{2, 5, 4, 3}, true
	case AttrSerialNumber:
		return asn1.ObjectIdentifier{2, 5, 4, 5}, true
	case AttrCountry:
		return asn1.ObjectIdentifier{2, 5, 4, 6}, true
	case AttrLocality:
		return asn1.ObjectIdentifier{2, 5, 4, 7}, true
	case AttrProvince:
		return asn1.ObjectIdentifier{2, 5, 4, 8}, true
	case AttrOrganization:
		return asn1.ObjectIdentifier{2, 5, 4, 10}, true
	case AttrOrganizationalUnit:
		return asn1.ObjectIdentifier{2, 5, 4, 11}, true
	}
	return nil, false
}

// MappingRule maps certificates issued by an external CA (for example
// LGPKI or GPKI), which carry no taxlink URI SAN, to a participant ID.
//
// A rule applies to a certificate whose issuer matches IssuerKeyID and/or
// IssuerDN (at least one must be set; if both are, both must match), and
// whose subject has an Attribute value matching Match in full. The
// participant ID is then ID with {0} replaced by the whole value and {1},
// {2}, ... by Match's capture groups; the identity's environment is
// Environment.
type MappingRule struct {
	// Name identifies the rule in errors; required, unique.
	Name string `json:"name"`
	// IssuerKeyID is the issuing CA certificate's SubjectKeyId in hex,
	// optionally with colons between bytes ("A1:B2:..." as OpenSSL
	// prints it, or "a1b2...").
	IssuerKeyID string `json:"issuer_key_id,omitempty"`
	// IssuerDN is the issuing CA's exact subject distinguished name, as
	// SubjectDN renders it (RFC 4514 style, most significant RDN last,
	// e.g. "CN=Application CA2,OU=LGPKI,O=Japanese Government,C=JP").
	IssuerDN string `json:"issuer_dn,omitempty"`
	// Attribute is the subject attribute read: AttrCommonName ("CN"),
	// AttrSerialNumber ("serialNumber"), AttrOrganization ("O"),
	// AttrOrganizationalUnit ("OU"), AttrLocality ("L"), AttrProvince
	// ("ST") or AttrCountry ("C"). Every value of the attribute in the
	// subject is tried.
	Attribute string `json:"attribute"`
	// Match is a regular expression (RE2 syntax) that must match the
	// attribute value in full (it is anchored at both ends).
	Match string `json:"match"`
	// ID is the participant ID template, e.g. "lg:{1}". It must start with
	// a literal kind and colon ("lg:", "nta:", "corp:" or "hub:"), so that
	// a certificate can never choose its kind; {n} may reference group n
	// of Match (0 is the whole value). Braces are otherwise not allowed.
	ID string `json:"id"`
	// Environment is the environment of every identity this rule maps to.
	Environment string `json:"environment"`
}

// mappingRulesDocument is the JSON form read by ParseMappingRules.
type mappingRulesDocument struct {
	Rules []MappingRule `json:"rules"`
}

// maxMappingRulesSize bounds the JSON accepted by ParseMappingRules.
const maxMappingRulesSize = 1 << 20

// ParseMappingRules parses and validates a JSON rules document:
//
//	{"rules": [{"name": "lgpki-ou", "issuer_dn": "CN=...,C=JP",
//	            "attribute": "OU", "match": "([0-9]{6})",
//	            "id": "lg:{1}", "environment": "production"}]}
//
// Parsing is strict: unknown or duplicate members, trailing data, an empty
// rule list and any rule NewRuleMapper would refuse yield an error
// wrapping ErrInvalidMappingRule.
func ParseMappingRules(data []byte) ([]MappingRule, error) {
	if len(data) > maxMappingRulesSize {
		return nil, fmt.Errorf("%w: rules document is %d bytes, limit %d", ErrInvalidMappingRule, len(data), maxMappingRulesSize)
	}
	if err := checkJSONNoDuplicates(data); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMappingRule, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc mappingRulesDocument
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMappingRule, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the rules document", ErrInvalidMappingRule)
	}
	if _, err := compileRules(doc.Rules); err != nil {
		return nil, err
	}
	return doc.Rules, nil
}

// checkJSONNoDuplicates reports an object with a repeated member name
// anywhere in data (encoding/json would silently keep the last one).
func checkJSONNoDuplicates(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				key, err := dec.Token()
				if err != nil {
					return err
				}
				k, _ := key.(string)
				if seen[k] {
					return fmt.Errorf("duplicate member %q", k)
				}
				seen[k] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token() // '}'
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token() // ']'
			return err
		}
		return nil
	}
	return walk()
}

// compiledRule is a validated MappingRule.
type compiledRule struct {
	name     string
	keyID    []byte // nil: not constrained
	dn       string // "": not constrained
	attr     asn1.ObjectIdentifier
	attrName string
	re       *regexp.Regexp
	tmpl     []templatePart
	env      string
}

// templatePart is a literal (group < 0) or a capture group reference.
type templatePart struct {
	literal string
	group   int
}

// compileRules validates rules; errors wrap ErrInvalidMappingRule.
func compileRules(rules []MappingRule) ([]compiledRule, error) {
	if len(rules) == 0 {
		return nil, fmt.Errorf("%w: no rules", ErrInvalidMappingRule)
	}
	names := map[string]bool{}
	out := make([]compiledRule, 0, len(rules))
	for i, r := range rules {
		c, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("%w: rule %d (%q): %w", ErrInvalidMappingRule, i, r.Name, err)
		}
		if names[r.Name] {
			return nil, fmt.Errorf("%w: rule %d: name %q used twice", ErrInvalidMappingRule, i, r.Name)
		}
		names[r.Name] = true
		out = append(out, c)
	}
	return out, nil
}

func compileRule(r MappingRule) (compiledRule, error) {
	c := compiledRule{name: r.Name, dn: r.IssuerDN, attrName: r.Attribute, env: r.Environment}
	if r.Name == "" {
		return c, errors.New("name is empty")
	}
	if r.IssuerKeyID == "" && r.IssuerDN == "" {
		return c, errors.New("neither issuer_key_id nor issuer_dn given")
	}
	if r.IssuerKeyID != "" {
		kid, err := hex.DecodeString(strings.ReplaceAll(r.IssuerKeyID, ":", ""))
		if err != nil || len(kid) == 0 {
			return c, fmt.Errorf("issuer_key_id %q is not a hex key identifier", r.IssuerKeyID)
		}
		c.keyID = kid
	}
	if strings.TrimSpace(r.IssuerDN) != r.IssuerDN {
		return c, fmt.Errorf("issuer_dn %q has surrounding whitespace", r.IssuerDN)
	}
	oid, ok := attributeOID(r.Attribute)
	if !ok {
		return c, fmt.Errorf("attribute %q is not one of CN, serialNumber, O, OU, L, ST, C", r.Attribute)
	}
	c.attr = oid
	if r.Match == "" {
		return c, errors.New("match is empty")
	}
	re, err := regexp.Compile("^(?:" + r.Match + ")$")
	if err != nil {
		return c, fmt.Errorf("match: %w", err)
	}
	c.re = re
	if c.tmpl, err = parseTemplate(r.ID, re.NumSubexp()); err != nil {
		return c, fmt.Errorf("id %q: %w", r.ID, err)
	}
	if err := ValidateEnvironment(r.Environment); err != nil {
		return c, err
	}
	return c, nil
}

// parseTemplate parses a participant ID template with groups 0..maxGroup.
func parseTemplate(s string, maxGroup int) ([]templatePart, error) {
	kind, value, ok := strings.Cut(s, ":")
	if !ok || strings.ContainsAny(kind, "{}") {
		return nil, errors.New("must start with a literal kind and colon, e.g. \"lg:\"")
	}
	if value == "" {
		return nil, errors.New("nothing after the kind")
	}
	// Validate the kind with a placeholder value.
	if err := ValidateParticipantID(kind + ":x"); err != nil {
		return nil, err
	}
	var parts []templatePart
	rest := s
	for rest != "" {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			parts = append(parts, templatePart{literal: rest, group: -1})
			break
		}
		if rest[open] == '}' {
			return nil, errors.New("unmatched '}'")
		}
		if open > 0 {
			parts = append(parts, templatePart{literal: rest[:open], group: -1})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, errors.New("unterminated '{'")
		}
		ref := rest[open+1 : open+end]
		n, err := strconv.Atoi(ref)
		if err != nil || ref == "" || ref[0] == '+' || ref[0] == '-' || (len(ref) > 1 && ref[0] == '0') {
			return nil, fmt.Errorf("{%s} is not a group number", ref)
		}
		if n > maxGroup {
			return nil, fmt.Errorf("{%d} refers to a group the match expression does not have (it has %d)", n, maxGroup)
		}
		parts = append(parts, templatePart{group: n})
		rest = rest[open+end+1:]
	}
	return parts, nil
}

// expand fills the template from a submatch.
func (c *compiledRule) expand(sub []string) string {
	var b strings.Builder
	for _, p := range c.tmpl {
		if p.group < 0 {
			b.WriteString(p.literal)
		} else {
			b.WriteString(sub[p.group])
		}
	}
	return b.String()
}

// issuerMatches reports whether the rule applies to an issuer with the
// given subject DN and key identifier.
func (c *compiledRule) issuerMatches(dn string, keyID []byte) bool {
	if c.keyID != nil && !bytes.Equal(c.keyID, keyID) {
		return false
	}
	if c.dn != "" && c.dn != dn {
		return false
	}
	return true
}

// issuerNamed reports whether dn or keyID is one of the rule's issuer
// identifiers (either one suffices).
func (c *compiledRule) issuerNamed(dn string, keyID []byte) bool {
	return c.keyID != nil && len(keyID) > 0 && bytes.Equal(c.keyID, keyID) || c.dn != "" && c.dn == dn
}

// RuleMapper is a Mapper for certificates from external CAs, driven by
// MappingRules. A certificate whose issuer is named by any rule (by key
// identifier or by DN) is an external certificate: it is mapped by the
// rules and only by them, never by the fallback, so an external CA cannot
// assert a taxlink URI SAN. Every rule whose issuer and attribute match is
// applied; the certificate is refused with ErrUnmappedCertificate if none
// applies and with ErrAmbiguousIdentity if they yield different
// identities. Any other certificate is mapped by the fallback Mapper, or
// refused with ErrUnmappedCertificate if there is none.
//
// The issuer is identified by the verified issuer certificate (its
// SubjectKeyId and subject DN) when the chain is known (MapChain, which
// the TLS configurations use), and by the leaf's AuthorityKeyId and
// issuer DN otherwise (Map). Errors name the certificate's serial number
// and issuer, never its subject, which may hold personal data.
//
// A RuleMapper is immutable and safe for concurrent use.
type RuleMapper struct {
	rules    []compiledRule
	fallback Mapper
}

// NewRuleMapper compiles rules (see MappingRule; errors wrap
// ErrInvalidMappingRule). fallback maps certificates not issued by any
// rule's CA; pass URIMapper{} to accept taxlink CA certificates as well,
// or nil to accept only mapped external certificates.
func NewRuleMapper(rules []MappingRule, fallback Mapper) (*RuleMapper, error) {
	compiled, err := compileRules(rules)
	if err != nil {
		return nil, err
	}
	return &RuleMapper{rules: compiled, fallback: fallback}, nil
}

// Map maps leaf, identifying its issuer by the leaf's AuthorityKeyId and
// issuer DN.
func (m *RuleMapper) Map(leaf *x509.Certificate) (Identity, error) {
	if leaf == nil {
		return Identity{}, fmt.Errorf("%w: nil certificate", ErrUnmappedCertificate)
	}
	return m.mapWith(leaf, leaf.RawIssuer, leaf.AuthorityKeyId, nil, func() (Identity, error) {
		return m.fallback.Map(leaf)
	})
}

// MapChain maps chain[0], identifying its issuer by the verified issuer
// certificate chain[1] (for a chain of one certificate, a directly trusted
// leaf, by the leaf's issuer fields as in Map). The leaf's AuthorityKeyId
// also counts when deciding whether the certificate is external, never
// when selecting a rule.
func (m *RuleMapper) MapChain(chain []*x509.Certificate) (Identity, error) {
	if len(chain) == 0 || chain[0] == nil {
		return Identity{}, fmt.Errorf("%w: empty certificate chain", ErrUnmappedCertificate)
	}
	leaf := chain[0]
	rawIssuer, keyID := leaf.RawIssuer, leaf.AuthorityKeyId
	if len(chain) > 1 && chain[1] != nil {
		rawIssuer, keyID = chain[1].RawSubject, chain[1].SubjectKeyId
	}
	return m.mapWith(leaf, rawIssuer, keyID, leaf.AuthorityKeyId, func() (Identity, error) {
		return mapChain(m.fallback, chain)
	})
}

// mapWith maps leaf, whose issuer has the DER name rawIssuer and key
// identifier keyID. altKeyID, if not nil, is another key identifier
// claimed for the issuer: it makes the certificate external if a rule
// names it, but does not select rules.
func (m *RuleMapper) mapWith(leaf *x509.Certificate, rawIssuer, keyID, altKeyID []byte, fallback func() (Identity, error)) (Identity, error) {
	issuerDN, err := dnString(rawIssuer)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: certificate serial %s: unparseable issuer name: %w", ErrUnmappedCertificate, serialText(leaf), err)
	}
	external := false
	for i := range m.rules {
		if m.rules[i].issuerNamed(issuerDN, keyID) || m.rules[i].issuerNamed("", altKeyID) {
			external = true
			break
		}
	}
	if !external {
		if m.fallback == nil {
			return Identity{}, fmt.Errorf("%w: certificate serial %s: issuer %q is not the CA of any rule", ErrUnmappedCertificate, serialText(leaf), issuerDN)
		}
		return fallback()
	}
	var (
		found     Identity
		foundRule string
	)
	for i := range m.rules {
		r := &m.rules[i]
		if !r.issuerMatches(issuerDN, keyID) {
			continue
		}
		for _, atv := range leaf.Subject.Names {
			v, ok := atv.Value.(string)
			if !ok || !atv.Type.Equal(r.attr) {
				continue
			}
			sub := r.re.FindStringSubmatch(v)
			if sub == nil {
				continue
			}
			id := Identity{Env: r.env, ID: r.expand(sub)}
			if err := id.Validate(); err != nil {
				return Identity{}, fmt.Errorf("certificate serial %s from %q: rule %q yields an invalid participant ID: %w", serialText(leaf), issuerDN, r.name, err)
			}
			if foundRule != "" && id != found {
				return Identity{}, fmt.Errorf("%w: certificate serial %s from %q: rules %q and %q yield different identities",
					ErrAmbiguousIdentity, serialText(leaf), issuerDN, foundRule, r.name)
			}
			found, foundRule = id, r.name
		}
	}
	if foundRule == "" {
		return Identity{}, fmt.Errorf("%w: certificate serial %s from external CA %q matches no rule", ErrUnmappedCertificate, serialText(leaf), issuerDN)
	}
	return found, nil
}

// SubjectDN returns c's exact subject distinguished name in the form
// MappingRule.IssuerDN is compared with: the RDN sequence as encoded in
// the certificate, rendered by crypto/x509/pkix.RDNSequence.String (RFC
// 4514 style, most significant RDN last, non-ASCII characters as UTF-8).
func SubjectDN(c *x509.Certificate) (string, error) {
	if c == nil {
		return "", errors.New("pki: subject DN of a nil certificate")
	}
	dn, err := dnString(c.RawSubject)
	if err != nil {
		return "", fmt.Errorf("pki: subject DN: %w", err)
	}
	return dn, nil
}

// dnString renders a DER-encoded Name exactly (order and multi-valued
// RDNs preserved).
func dnString(raw []byte) (string, error) {
	var rdns pkix.RDNSequence
	rest, err := asn1.Unmarshal(raw, &rdns)
	if err != nil {
		return "", err
	}
	if len(rest) != 0 {
		return "", errors.New("trailing data after the distinguished name")
	}
	return rdns.String(), nil
}

// issuerText names c's issuer for messages, falling back to the parsed
// form if the raw name does not parse.
func issuerText(c *x509.Certificate) string {
	if dn, err := dnString(c.RawIssuer); err == nil {
		return dn
	}
	return c.Issuer.String()
}

// serialText renders a certificate's serial number in hex.
func serialText(c *x509.Certificate) string {
	if c == nil || c.SerialNumber == nil {
		return "<none>"
	}
	return c.SerialNumber.Text(16)
}
