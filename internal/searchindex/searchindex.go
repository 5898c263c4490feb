// Package searchindex keeps a searchable index of a node's recorded tax
// notifications, per tenant (a local government), so that the console's data
// users (利用端末) can find a tenant's records by message type, tax year,
// recording date and taxpayer identifier (個人番号 My Number, 12 digits, or
// 法人番号, 13 digits) without the index ever holding the identifier itself.
//
// # What is stored
//
// For every record of a tenant the index keeps one entry: the tenant and the
// envelope ID, the message type, the tax year (0 when unknown), the creation
// and recording times, the ciphertext size, whether the payload could be read
// (Indexed), and the taxpayer's blind index (see below) when one was found.
// It also keeps, per tenant, a cursor: the store Seq of the last record
// indexed. Nothing else from the payload is stored: no clear identifier, no
// name, address or amount, no identifier of a relative (扶養親族 or spouse)
// that a return also lists, and no part of a payload in any error message.
//
// # The blind index
//
// A taxpayer identifier is stored as HMAC-SHA256(k, id), where id is the
// normalised identifier (ASCII digits only) and k is the tenant's 32-byte
// index key, derived by [DeriveKey] with HKDF-SHA256 from secret material the
// node holds for that tenant. The HMAC is deterministic, so an equality search
// works: a query's identifier is blinded with the same key and compared with
// the stored value. Because the key is secret and per tenant, the index file
// alone does not reveal identifiers: there are only 10^11 valid My Numbers, so
// a plain hash would be reversed by enumeration, while the keyed HMAC cannot
// be enumerated without the key; and equal identifiers under two tenants give
// unrelated values, so entries cannot be linked across tenants. Whoever holds
// a tenant's key can still test a guessed identifier; the key must therefore
// be guarded like the tenant's sealing key.
//
// # Contract
//
// The index is a cache derived from the store: [Index.Sync] brings a tenant's
// entries up to date, [Index.Remove] and [Index.Forget] follow the store's
// retention erasures, and an index lost or forgotten is rebuilt by Sync from
// the store. [Index.Search] enforces tenant isolation in SQL: it only ever
// reads entries of the tenants the caller names (an empty list reads none),
// restricted further to the message types the caller may see.
//
// The payload is read through an [Opener] that returns the plaintext; with a
// node that is an adapter over node.Open:
//
//	open := func(ctx context.Context, tenant, id string) (io.ReadCloser, string, error) {
//		rc, h, err := n.Open(ctx, tenant, id)
//		if err != nil {
//			return nil, "", err
//		}
//		return rc, h.ContentType, nil
//	}
//
// The database is a SQLite file in WAL mode with synchronous=FULL and
// secure_delete on, opened with write transactions that begin IMMEDIATE, as
// store/sqlite does; it may be shared by several processes.
package searchindex

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"unicode"
)

// Errors. Errors returned by this package wrap at most one of them; test with
// errors.Is.
var (
	// ErrInvalid means an argument was rejected before anything was
	// touched. The error never contains a taxpayer identifier.
	ErrInvalid = errors.New("searchindex: invalid argument")
	// ErrMalformed means a payload could not be parsed. The error names
	// at most a line number; it never quotes the payload.
	ErrMalformed = errors.New("searchindex: malformed payload")
)

// KeySize is the size of a [Key] in bytes.
const KeySize = 32

// MinSecretSize is the smallest secret [DeriveKey] accepts, in bytes.
const MinSecretSize = 16

// Key is a tenant's index key: KeySize bytes. Every function of this package
// rejects a key of another size (a tenant with such a key matches nothing by
// taxpayer in [Index.Search]).
type Key []byte

// hkdfSalt is the HKDF salt of DeriveKey; it separates index keys from any
// other key derived from the same secret.
const hkdfSalt = "taxlink searchindex v1"

// DeriveKey derives tenant's index key from secret material the node holds
// for that tenant, with HKDF-SHA256 (salt "taxlink searchindex v1", info the
// tenant ID). It returns nil, which every function here rejects, when secret
// is shorter than MinSecretSize bytes or tenant is empty.
func DeriveKey(secret []byte, tenant string) Key {
	if len(secret) < MinSecretSize || tenant == "" {
		return nil
	}
	k, err := hkdf.Key(sha256.New, secret, []byte(hkdfSalt), tenant, KeySize)
	if err != nil {
		return nil // cannot happen: KeySize is far below HKDF-SHA256's limit
	}
	return k
}

// Blind returns the blind index of a taxpayer identifier under k:
// HMAC-SHA256 over the identifier normalised (full-width digits to ASCII,
// spaces and hyphens removed). It returns an error wrapping ErrInvalid if the
// normalised identifier is not 12 or 13 ASCII digits, or if k is not KeySize
// bytes. The identifier never appears in the error.
func Blind(k Key, id string) ([]byte, error) {
	if len(k) != KeySize {
		return nil, fmt.Errorf("%w: index key is %d bytes, want %d", ErrInvalid, len(k), KeySize)
	}
	n, ok := normalize(id)
	if !ok {
		return nil, fmt.Errorf("%w: taxpayer identifier is not 12 or 13 digits", ErrInvalid)
	}
	return blind(k, n), nil
}

// blind is Blind for a normalised identifier and a valid key.
func blind(k Key, normalized string) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(normalized))
	return m.Sum(nil)
}

// maxIDInput bounds the input normalize looks at, in bytes.
const maxIDInput = 256

// normalize returns id as ASCII digits: full-width digits are converted,
// white space (including the ideographic space) and hyphen-like characters
// are dropped. ok is false unless the result is 12 or 13 digits.
func normalize(id string) (string, bool) {
	if len(id) > maxIDInput {
		return "", false
	}
	var b [13]byte
	n := 0
	for _, r := range id {
		var d byte
		switch {
		case r >= '0' && r <= '9':
			d = byte(r)
		case r >= '０' && r <= '９':
			d = byte(r-'０') + '0'
		case unicode.IsSpace(r) || isHyphen(r):
			continue
		default:
			return "", false // includes utf8.RuneError from invalid UTF-8
		}
		if n == len(b) {
			return "", false
		}
		b[n] = d
		n++
	}
	if n != 12 && n != 13 {
		return "", false
	}
	return string(b[:n]), true
}

// isHyphen reports whether r is a hyphen, dash or minus people type between
// digit groups, including the katakana prolonged sound mark that Japanese
// input methods often produce for "-".
func isHyphen(r rune) bool {
	switch r {
	case '-', '\u2010', '\u2011', '\u2012', '\u2013', '\u2014', '\u2015', '\u2212',
		'\uFE63', '\uFF0D', '\u30FC', '\uFF70':
		return true
	}
	return false
}
