package envelope

import (
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
)

// sealInfoLabel starts the HPKE info string; the version suffix lets a
// future format derive unrelated keys from the same recipient key.
const sealInfoLabel = "taxlink/envelope/v1"

// SealInfo returns the HPKE info string for h:
//
//	"taxlink/envelope/v1" 0x00 ID 0x00 Type 0x00 Sender 0x00 Recipient 0x00 KeyID
//
// Binding these fields into the key schedule means a ciphertext cannot be
// replayed under another envelope identity or recipient: opening fails.
// None of the fields can contain 0x00, so the encoding is unambiguous.
func SealInfo(h *Header) []byte {
	b := make([]byte, 0, len(sealInfoLabel)+5+len(h.ID)+len(h.Type)+len(h.Sender)+len(h.Recipient)+len(h.KeyID))
	b = append(b, sealInfoLabel...)
	for _, s := range []string{h.ID, h.Type, h.Sender, h.Recipient, h.KeyID} {
		b = append(b, 0)
		b = append(b, s...)
	}
	return b
}

// chunkAAD is the additional data of chunk index: the 8-byte big-endian
// index and a final flag. The index rejects reordering even if a future
// HPKE context stopped enforcing sequence; the flag rejects truncation at a
// chunk boundary and extension after the last chunk.
func chunkAAD(index uint64, final bool) []byte {
	var aad [9]byte
	binary.BigEndian.PutUint64(aad[:8], index)
	if final {
		aad[8] = 1
	}
	return aad[:]
}

// Seal encrypts plaintext to pub and writes the ciphertext to dst.
//
// Before the call h.ID, Type, Sender, Recipient, Created, ContentType and
// KeyID must be set and valid; h.ChunkSize may be zero (DefaultChunkSize)
// or a value in MinChunkSize..MaxChunkSize. Seal reads plaintext to EOF,
// sealing it in ChunkSize chunks with one HPKE context (info = SealInfo(h),
// AAD = chunk index || final flag), and on success fills h.KEM, KDF, AEAD,
// Enc, ChunkSize, PayloadSize, CiphertextSize and CiphertextDigest, leaving
// h ready for MarshalBinary. It holds at most one chunk in memory.
//
// pub must be a key of a supported KEM (ErrUnsupportedSuite otherwise).
// On error h is not modified and whatever was written to dst must be
// discarded.
func Seal(pub hpke.PublicKey, h *Header, plaintext io.Reader, dst io.Writer) error {
	if h == nil {
		return fmt.Errorf("%w header: nil", ErrMalformed)
	}
	if pub == nil {
		return fmt.Errorf("%w: nil sealing public key", ErrBadKey)
	}
	kemID := pub.KEM().ID()
	if _, _, err := kemFor(kemID); err != nil {
		return err
	}
	if err := h.validateIdentity(); err != nil {
		return err
	}
	chunkSize := h.ChunkSize
	if chunkSize == 0 {
		chunkSize = DefaultChunkSize
	}
	if _, err := CiphertextSizeFor(0, chunkSize); err != nil {
		return err
	}

	enc, sender, err := hpke.NewSender(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), SealInfo(h))
	if err != nil {
		return fmt.Errorf("envelope: seal: hpke setup: %w", err)
	}
	digest := sha256.New()
	// One extra byte of look-ahead tells whether the current chunk is the
	// last one without buffering a second chunk.
	buf := make([]byte, int(chunkSize)+1)
	have := 0
	var index, payloadSize, ciphertextSize uint64
	for {
		n, err := io.ReadFull(plaintext, buf[have:])
		have += n
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return fmt.Errorf("envelope: seal: read plaintext: %w", err)
		}
		final := err != nil
		m := min(have, int(chunkSize))
		payloadSize += uint64(m)
		if payloadSize > MaxPayloadSize {
			return fmt.Errorf("envelope: seal: payload exceeds MaxPayloadSize (%d bytes)", MaxPayloadSize)
		}
		ct, err := sender.Seal(chunkAAD(index, final), buf[:m])
		if err != nil {
			return fmt.Errorf("envelope: seal: chunk %d: %w", index, err)
		}
		digest.Write(ct)
		if _, err := dst.Write(ct); err != nil {
			return fmt.Errorf("envelope: seal: write ciphertext: %w", err)
		}
		ciphertextSize += uint64(len(ct))
		if final {
			break
		}
		buf[0] = buf[chunkSize]
		have = 1
		index++
	}

	h.KEM, h.KDF, h.AEAD = kemID, KDFHKDFSHA256, AEADAES256GCM
	h.Enc = enc
	h.ChunkSize = chunkSize
	h.PayloadSize = payloadSize
	h.CiphertextSize = ciphertextSize
	digest.Sum(h.CiphertextDigest[:0])
	return nil
}

// Open returns a reader of the plaintext sealed in ciphertext for h, which
// must be a valid header whose signature the caller has already checked.
//
// The reader decrypts one chunk at a time (it never holds more than one)
// and returns io.EOF only after the last chunk authenticated, the stream
// ended exactly at h.CiphertextSize bytes and its SHA-256 equals
// h.CiphertextDigest. Otherwise it returns an error wrapping ErrDecrypt
// (tampered, reordered or foreign chunk, wrong key), ErrTruncated (stream
// too short; also matches ErrSizeMismatch), ErrSizeMismatch (trailing
// bytes) or ErrDigestMismatch. Because earlier chunks are released before
// the end is reached, callers must treat everything read as void unless
// the final Read returns io.EOF.
//
// Open itself fails with ErrUnsupportedSuite or ErrBadKey if priv does not
// match h.KEM, with ErrMalformed if h is invalid, and with ErrDecrypt if
// h.Enc cannot be decapsulated.
func Open(priv hpke.PrivateKey, h *Header, ciphertext io.Reader) (io.Reader, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	if priv == nil {
		return nil, fmt.Errorf("%w: nil sealing private key", ErrBadKey)
	}
	if id := priv.KEM().ID(); id != h.KEM {
		return nil, fmt.Errorf("%w: private key is for kem 0x%04x, header uses 0x%04x", ErrBadKey, id, h.KEM)
	}
	r, err := hpke.NewRecipient(h.Enc, priv, hpke.HKDFSHA256(), hpke.AES256GCM(), SealInfo(h))
	if err != nil {
		return nil, fmt.Errorf("%w: hpke setup: %w", ErrDecrypt, err)
	}
	return &opener{
		recipient:   r,
		src:         newVerifyingReader(h, ciphertext),
		chunkSize:   h.ChunkSize,
		payloadSize: h.PayloadSize,
		chunks:      chunkCount(h.PayloadSize, h.ChunkSize),
		// Small payloads need no full-size chunk buffer.
		buf: make([]byte, min(uint64(h.ChunkSize), h.PayloadSize)+TagSize),
	}, nil
}

// opener is the plaintext reader returned by Open.
type opener struct {
	recipient   *hpke.Recipient
	src         *verifyingReader
	chunkSize   uint32
	payloadSize uint64
	chunks      uint64
	index       uint64 // next chunk to open
	buf         []byte // ciphertext of the current chunk
	out         []byte // plaintext not yet returned
	err         error  // sticky; io.EOF after a fully verified stream
}

func (o *opener) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(o.out) == 0 {
		if o.err != nil {
			return 0, o.err
		}
		o.next()
	}
	n := copy(p, o.out)
	o.out = o.out[n:]
	return n, nil
}

// next reads, authenticates and decrypts the next chunk into o.out, or
// sets o.err.
func (o *opener) next() {
	final := o.index == o.chunks-1
	size := uint64(o.chunkSize)
	if final {
		size = o.payloadSize - o.index*uint64(o.chunkSize)
	}
	ct := o.buf[:size+TagSize]
	if _, err := io.ReadFull(o.src, ct); err != nil {
		o.err = err
		return
	}
	pt, err := o.recipient.Open(chunkAAD(o.index, final), ct)
	if err != nil {
		// The HPKE error carries no useful detail and must not be relied on;
		// the chunk position is what an operator needs.
		o.err = fmt.Errorf("%w: chunk %d of %d does not authenticate", ErrDecrypt, o.index, o.chunks)
		return
	}
	o.index++
	if final {
		// Withhold the last plaintext until the stream is known to end here
		// and to match the signed digest, so that a clean io.EOF means the
		// whole payload is exactly what the sender signed.
		if err := o.src.finish(); err != io.EOF {
			o.err = err
			return
		}
		o.err = io.EOF
	}
	o.out = pt
}

// VerifyingReader returns a reader that passes the ciphertext stream
// through unchanged and checks it against h: it never returns more than
// h.CiphertextSize bytes, and instead of io.EOF it returns an error
// wrapping ErrTruncated (and ErrSizeMismatch) if the stream is shorter,
// ErrSizeMismatch if it is longer, or ErrDigestMismatch if its SHA-256
// differs from h.CiphertextDigest. The hub and nodes use it to store
// ciphertext they cannot open; since bytes are passed on before the end is
// checked, whatever was stored must be discarded unless io.EOF was
// returned. An invalid h makes the first Read fail with its validation
// error.
func VerifyingReader(h *Header, ciphertext io.Reader) io.Reader {
	return newVerifyingReader(h, ciphertext)
}

func newVerifyingReader(h *Header, src io.Reader) *verifyingReader {
	v := &verifyingReader{src: src, hash: sha256.New()}
	if err := h.Validate(); err != nil {
		v.err = err
		return v
	}
	v.want = h.CiphertextSize
	v.digest = h.CiphertextDigest
	return v
}

type verifyingReader struct {
	src    io.Reader
	want   uint64
	digest [32]byte
	n      uint64 // bytes passed through so far
	hash   hash.Hash
	err    error // sticky; io.EOF after a verified stream
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	remaining := v.want - v.n
	if remaining == 0 {
		return 0, v.finish()
	}
	if uint64(len(p)) > remaining {
		p = p[:remaining]
	}
	n, err := v.src.Read(p)
	v.hash.Write(p[:n])
	v.n += uint64(n)
	switch {
	case err == io.EOF && v.n < v.want:
		v.err = v.truncated()
	case err == io.EOF:
		v.err = v.checkDigest()
	case err != nil:
		v.err = fmt.Errorf("envelope: read ciphertext: %w", err)
	}
	return n, v.err
}

// finish is called once exactly want bytes were read: it confirms that the
// source has nothing more and that the digest matches, returning io.EOF if
// so and the (sticky) error otherwise.
func (v *verifyingReader) finish() error {
	if v.err != nil {
		return v.err
	}
	if v.n < v.want {
		v.err = v.truncated()
		return v.err
	}
	var probe [1]byte
	for range 100 {
		n, err := v.src.Read(probe[:])
		switch {
		case n > 0:
			v.err = fmt.Errorf("%w: trailing bytes after the %d declared bytes", ErrSizeMismatch, v.want)
		case err == io.EOF:
			v.err = v.checkDigest()
		case err != nil:
			v.err = fmt.Errorf("envelope: read ciphertext: %w", err)
		default:
			continue
		}
		return v.err
	}
	v.err = fmt.Errorf("envelope: read ciphertext: %w", io.ErrNoProgress)
	return v.err
}

func (v *verifyingReader) truncated() error {
	return &detailError{
		msg:  fmt.Sprintf("%v: ciphertext ended after %d of %d bytes", ErrTruncated, v.n, v.want),
		errs: []error{ErrTruncated, ErrSizeMismatch},
	}
}

// checkDigest returns io.EOF if the bytes seen hash to the expected digest.
func (v *verifyingReader) checkDigest() error {
	var got [32]byte
	v.hash.Sum(got[:0])
	if got != v.digest {
		return fmt.Errorf("%w: sha256 %s, header says %s", ErrDigestMismatch,
			hex.EncodeToString(got[:]), hex.EncodeToString(v.digest[:]))
	}
	return io.EOF
}
