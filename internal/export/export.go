// Package export hands a tenant's recorded notifications over to the
// tenant's own tax system (税務システム), as 総務省告示第151号 第5 asks: the
// tax system pulls its new records in order with a cursor and acknowledges
// them, either through an mTLS API ([Server]) or through files dropped into
// a directory it collects from ([Drop]).
//
// A tax system is not a taxlink participant. It is configured as a
// [Client]: a name, the one tenant it may read, the SHA-256 fingerprint of
// its client certificate and the networks it may connect from. Nothing
// else is accepted, and every request, allowed or refused, and every file
// handed over is recorded in the audit log under the actor "export:"+name.
// Audit events, log lines and error messages carry record IDs, sequence
// numbers and tenants, never payload bytes or personal data.
//
// Positions are sequence numbers of the store ([store.Record].Seq): a
// client's cursor is the highest Seq it has acknowledged, and the next
// records it is offered are those of its tenant with a greater Seq. The
// cursors are kept durably by [Cursors].
package export

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"

	"taxlink/internal/api"
	"taxlink/internal/envelope"
)

// Opener opens a record's plaintext on behalf of actor from the address
// from (node.Node.OpenAs fits). It must open only a record of tenant: a
// missing record, or one of another tenant, is an error wrapping
// store.ErrNotFound. The header returned describes the record (its ID,
// Recipient, ContentType and PayloadSize are used); the caller closes the
// reader.
type Opener func(ctx context.Context, actor, from, tenant, id string) (io.ReadCloser, *envelope.Header, error)

// Client is one allowed tax system of the mTLS API.
type Client struct {
	// Name identifies the client in the configuration, the cursor store
	// and the audit log (as the actor "export:"+Name): 1..64 characters of
	// [a-z0-9-]. It is unique among the clients of a [Server].
	Name string
	// Tenant is the one tenant (participant ID, e.g. "lg:011002") whose
	// records the client may read.
	Tenant string
	// CertSHA256 is the fingerprint of the client's certificate: 64 hex
	// digits of SHA-256 over its DER encoding (either case). It is unique
	// among the clients of a [Server].
	CertSHA256 string
	// Networks lists the source addresses the client may connect from;
	// it must not be empty.
	Networks []netip.Prefix
}

// Sentinel errors.
var (
	// ErrInvalid reports a configuration or argument that is refused
	// before anything is touched; the wrapping error says why.
	ErrInvalid = errors.New("export: invalid argument")
	// ErrCursor reports a cursor that would move backwards: an
	// acknowledged position is never withdrawn.
	ErrCursor = errors.New("export: cursor would move backwards")
)

// Refusal codes of the export API, in addition to those of package api
// (api.CodeBadRequest, api.CodeTooLarge, api.CodeContentType,
// api.CodeInternal and api.CodeUnavailable are used as well).
const (
	// CodeUnknownClient (401): no client certificate, or one whose
	// fingerprint is not configured, or one outside its validity period.
	CodeUnknownClient api.Code = "unknown-client"
	// CodeAddressNotAllowed (403): a known client connected from an
	// address outside its Networks.
	CodeAddressNotAllowed api.Code = "address-not-allowed"
	// CodeNotFound (404): no such path, or no record with that ID for the
	// client's tenant (a record of another tenant gets the same answer).
	CodeNotFound api.Code = "not-found"
	// CodeMethodNotAllowed (405): a path asked with the wrong method.
	CodeMethodNotAllowed api.Code = "method-not-allowed"
	// CodeCursorBackwards (409): an acknowledgement below the cursor.
	CodeCursorBackwards api.Code = "cursor-backwards"
	// CodeBadSeq (400): an acknowledgement of a Seq that is not a record
	// of the client's tenant (for example beyond its last record).
	CodeBadSeq api.Code = "bad-seq"
	// CodeHeld (503): the record may not leave the node yet (the malware
	// check has not passed it); retry later.
	CodeHeld api.Code = "held"
)

// ErrHeld is what an Opener returns (wrapped) for a record that may not
// leave the node yet: the client is told to retry later, a drop skips it
// for now.
var ErrHeld = errors.New("export: record held back by the malware check")

var clientNameRE = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// ValidateName reports, wrapping [ErrInvalid], whether name is not a
// valid client or drop name: 1..64 characters of [a-z0-9-].
func ValidateName(name string) error {
	if !clientNameRE.MatchString(name) {
		return fmt.Errorf("%w: name %q is not 1..64 characters of [a-z0-9-]", ErrInvalid, name)
	}
	return nil
}

// Actor returns the audit actor of the client or drop named name:
// "export:"+name.
func Actor(name string) string { return "export:" + name }

// normalize validates c and returns it with its fingerprint in lowercase
// and its networks masked and copied.
func (c Client) normalize() (Client, error) {
	if err := ValidateName(c.Name); err != nil {
		return Client{}, err
	}
	if err := envelope.ValidParticipantID(c.Tenant); err != nil {
		return Client{}, fmt.Errorf("%w: client %s: tenant: %w", ErrInvalid, c.Name, err)
	}
	fp := strings.ToLower(c.CertSHA256)
	if b, err := hex.DecodeString(fp); err != nil || len(b) != 32 {
		return Client{}, fmt.Errorf("%w: client %s: CertSHA256 is not 64 hex digits", ErrInvalid, c.Name)
	}
	if len(c.Networks) == 0 {
		return Client{}, fmt.Errorf("%w: client %s: no allowed networks", ErrInvalid, c.Name)
	}
	nets := make([]netip.Prefix, len(c.Networks))
	for i, p := range c.Networks {
		if !p.IsValid() {
			return Client{}, fmt.Errorf("%w: client %s: network %d is not a valid prefix", ErrInvalid, c.Name, i)
		}
		nets[i] = p.Masked()
	}
	c.CertSHA256, c.Networks = fp, nets
	return c, nil
}

// allows reports whether addr is within one of c's networks.
func (c *Client) allows(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	for _, p := range c.Networks {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
