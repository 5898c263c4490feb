package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// wireMagic starts every envelope on the wire; the digit is the version.
const wireMagic = "TLE1"

// WritePreamble writes the envelope preamble to w in a single Write:
//
//	"TLE1"                  4 bytes magic
//	u16 len, headerBytes    1..MaxHeaderSize bytes, big-endian length
//	u16 len, sig            1..MaxSignatureSize bytes, big-endian length
//
// The caller then writes exactly Header.CiphertextSize bytes of ciphertext
// and nothing else. headerBytes must be a canonical header (ErrMalformed
// otherwise); the signature is not verified here.
func WritePreamble(w io.Writer, headerBytes, sig []byte) error {
	if _, err := ParseHeader(headerBytes); err != nil {
		return fmt.Errorf("envelope: write preamble: %w", err)
	}
	if len(sig) == 0 || len(sig) > MaxSignatureSize {
		return fmt.Errorf("%w preamble: signature length %d not in 1..%d", ErrMalformed, len(sig), MaxSignatureSize)
	}
	b := make([]byte, 0, len(wireMagic)+2+len(headerBytes)+2+len(sig))
	b = append(b, wireMagic...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(headerBytes)))
	b = append(b, headerBytes...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(sig)))
	b = append(b, sig...)
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("envelope: write preamble: %w", err)
	}
	return nil
}

// ReadPreamble reads the preamble written by WritePreamble from r. It reads
// exactly the preamble bytes and no more (no buffering), never allocates
// beyond MaxHeaderSize and MaxSignatureSize, and returns the parsed header,
// its canonical bytes (for Verify and receipt digests) and the signature.
//
// It does NOT verify the signature: the caller must look up the sender's
// key and call Verify(key, headerBytes, sig) before trusting h, then read
// exactly h.CiphertextSize bytes of ciphertext from r, wrapped with
// VerifyingReader or Open. Errors wrap ErrMalformed (ErrTruncated too if r
// ended early), ErrUnsupportedSuite or ErrBadParticipantID.
func ReadPreamble(r io.Reader) (h *Header, headerBytes, sig []byte, err error) {
	var fixed [len(wireMagic) + 2]byte
	if err := readFull(r, fixed[:], "magic and header length"); err != nil {
		return nil, nil, nil, err
	}
	if string(fixed[:4]) != wireMagic {
		return nil, nil, nil, fmt.Errorf("%w preamble: magic %q, want %q", ErrMalformed, fixed[:4], wireMagic)
	}
	hl := int(binary.BigEndian.Uint16(fixed[4:]))
	if hl == 0 || hl > MaxHeaderSize {
		return nil, nil, nil, fmt.Errorf("%w preamble: header length %d not in 1..%d", ErrMalformed, hl, MaxHeaderSize)
	}
	headerBytes = make([]byte, hl)
	if err := readFull(r, headerBytes, "header"); err != nil {
		return nil, nil, nil, err
	}
	h, err = ParseHeader(headerBytes)
	if err != nil {
		return nil, nil, nil, err
	}
	var sl [2]byte
	if err := readFull(r, sl[:], "signature length"); err != nil {
		return nil, nil, nil, err
	}
	n := int(binary.BigEndian.Uint16(sl[:]))
	if n == 0 || n > MaxSignatureSize {
		return nil, nil, nil, fmt.Errorf("%w preamble: signature length %d not in 1..%d", ErrMalformed, n, MaxSignatureSize)
	}
	sig = make([]byte, n)
	if err := readFull(r, sig, "signature"); err != nil {
		return nil, nil, nil, err
	}
	return h, headerBytes, sig, nil
}

// readFull is io.ReadFull with errors mapped to the package's sentinels: an
// early end of stream is a malformed, truncated preamble; transport errors
// are passed through wrapped.
func readFull(r io.Reader, b []byte, what string) error {
	n, err := io.ReadFull(r, b)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &detailError{
			msg:  fmt.Sprintf("%v preamble: %s: truncated (got %d of %d bytes)", ErrMalformed, what, n, len(b)),
			errs: []error{ErrMalformed, ErrTruncated},
		}
	default:
		return fmt.Errorf("envelope: read preamble: %s: %w", what, err)
	}
}
