package pki

import (
	"bytes"
	"encoding/pem"
	"fmt"
)

// PEM block types used by this package.
const (
	pemTypeCertificate    = "CERTIFICATE"
	pemTypePrivateKey     = "PRIVATE KEY"
	pemTypeEncryptedKey   = "ENCRYPTED PRIVATE KEY"
	pemTypePublicKey      = "PUBLIC KEY"
	pemBeginMarker        = "-----BEGIN "
	maxPEMFileSize        = 1 << 20 // no certificate bundle or key comes close
	pemInterBlockSpace    = " \t\r\n"
	pemBeginMarkerNoSpace = "-----BEGIN"
)

// decodePEMStrict decodes data as a sequence of PEM blocks and nothing else:
// only whitespace may surround and separate the blocks, every block must
// decode, and blocks must not carry headers. what names the data in errors,
// which wrap ErrMalformedPEM. It returns at least one block.
func decodePEMStrict(data []byte, what string) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest := data
	for {
		trimmed := bytes.TrimLeft(rest, pemInterBlockSpace)
		if len(trimmed) == 0 {
			break
		}
		offset := len(data) - len(trimmed)
		if !bytes.HasPrefix(trimmed, []byte(pemBeginMarker)) {
			return nil, fmt.Errorf("%w: %s: unexpected data at byte %d (only PEM blocks are allowed)", ErrMalformedPEM, what, offset)
		}
		block, next := pem.Decode(trimmed)
		if block == nil {
			return nil, fmt.Errorf("%w: %s: undecodable PEM block at byte %d", ErrMalformedPEM, what, offset)
		}
		// pem.Decode silently skips a malformed block and decodes the next
		// one; detect that by counting BEGIN markers in what it consumed.
		consumed := trimmed[:len(trimmed)-len(next)]
		if bytes.Count(consumed, []byte(pemBeginMarkerNoSpace)) != 1 {
			return nil, fmt.Errorf("%w: %s: undecodable PEM block at byte %d", ErrMalformedPEM, what, offset)
		}
		if len(block.Headers) != 0 {
			return nil, fmt.Errorf("%w: %s: PEM block %q at byte %d has headers", ErrMalformedPEM, what, block.Type, offset)
		}
		blocks = append(blocks, block)
		rest = next
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("%w: %s: no PEM block", ErrMalformedPEM, what)
	}
	return blocks, nil
}
