package bench

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/oklog/ulid/v2"

	"taxlink/internal/envelope"
	"taxlink/internal/pki"
	"taxlink/internal/receipt"
)

// CryptoCost is the CPU the relay's cryptography takes per notification,
// measured in this process with the functions the roles call. It is a
// floor of the relay's CPU per notification whatever else the relay does:
// the standard asks for every signature and its verification.
type CryptoCost struct {
	// Microseconds per operation, one goroutine.
	SealUs          float64 `json:"seal_us"`           // the sender: seal the payload (default KEM), sign the header
	HeaderVerifyUs  float64 `json:"header_verify_us"`  // hub and recipient node: parse the preamble, verify the signature
	ReceiptSignUs   float64 `json:"receipt_sign_us"`   // hub and recipient node: sign and encode a receipt
	ReceiptVerifyUs float64 `json:"receipt_verify_us"` // hub (recording) and sender (both): parse and verify a receipt
	// PerMsgUs is one seal, two header verifications, two receipt
	// signatures and three receipt verifications.
	PerMsgUs float64 `json:"per_msg_us"`
	// CeilingPerS is what the machine's CPUs could relay per second if
	// they did nothing but this cryptography.
	CeilingPerS float64 `json:"ceiling_per_s"`
	PayloadSize int     `json:"payload_bytes"`
}

// CryptoFloor measures CryptoCost for a payload of the given bytes, each
// operation for about d/4.
func CryptoFloor(ctx context.Context, payload []byte, d time.Duration) (CryptoCost, error) {
	fail := func(err error) (CryptoCost, error) { return CryptoCost{}, fmt.Errorf("bench: crypto probe: %w", err) }
	sealing, err := envelope.GenerateSealingKey(envelope.DefaultKEM)
	if err != nil {
		return fail(err)
	}
	signer, err := pki.NewKey()
	if err != nil {
		return fail(err)
	}
	header := func() *envelope.Header {
		return &envelope.Header{
			ID: ulid.Make().String(), Type: "income-tax-return", Sender: "nta:hq", Recipient: "lg:011002",
			Created: time.Now().UTC().Truncate(time.Millisecond), ContentType: "application/xml",
			KeyID: "bench", ChunkSize: 64 << 10,
		}
	}
	var wire bytes.Buffer // the last sealed envelope, for the verifications
	seal := func() error {
		h := header()
		var ct bytes.Buffer
		if err := envelope.Seal(sealing.PublicKey(), h, bytes.NewReader(payload), &ct); err != nil {
			return err
		}
		hb, err := h.MarshalBinary()
		if err != nil {
			return err
		}
		sig, err := envelope.Sign(signer, hb)
		if err != nil {
			return err
		}
		wire.Reset()
		if err := envelope.WritePreamble(&wire, hb, sig); err != nil {
			return err
		}
		_, err = wire.Write(ct.Bytes())
		return err
	}
	verifyHeader := func() error {
		_, hb, sig, err := envelope.ReadPreamble(bytes.NewReader(wire.Bytes()))
		if err != nil {
			return err
		}
		return envelope.Verify(&signer.PublicKey, hb, sig)
	}
	rc := &receipt.Receipt{
		Kind: receipt.Accepted, EnvelopeID: ulid.Make().String(), Type: "income-tax-return",
		Sender: "nta:hq", Recipient: "lg:011002", HeaderDigest: [32]byte{1},
		Issuer: "hub:kiko", Time: time.Now().UTC().Truncate(time.Millisecond), Seq: 1,
	}
	var signed []byte
	signReceipt := func() error {
		if err := rc.Sign(signer); err != nil {
			return err
		}
		signed, err = rc.MarshalJSON()
		return err
	}
	verifyReceipt := func() error {
		r, err := receipt.Parse(signed)
		if err != nil {
			return err
		}
		return r.Verify(&signer.PublicKey)
	}
	var c CryptoCost
	for _, op := range []struct {
		us *float64
		f  func() error
	}{{&c.SealUs, seal}, {&c.HeaderVerifyUs, verifyHeader}, {&c.ReceiptSignUs, signReceipt}, {&c.ReceiptVerifyUs, verifyReceipt}} {
		us, err := timeOp(ctx, op.f, d/4)
		if err != nil {
			return fail(err)
		}
		*op.us = us
	}
	c.PerMsgUs = c.SealUs + 2*c.HeaderVerifyUs + 2*c.ReceiptSignUs + 3*c.ReceiptVerifyUs
	c.CeilingPerS = float64(runtime.GOMAXPROCS(0)) * 1e6 / c.PerMsgUs
	c.PayloadSize = len(payload)
	return c, nil
}

// timeOp runs f over and over for about d and returns the microseconds
// per call.
func timeOp(ctx context.Context, f func() error, d time.Duration) (float64, error) {
	start := time.Now()
	n := 0
	for n < 8 || time.Since(start) < d {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := f(); err != nil {
			return 0, err
		}
		n++
	}
	return float64(time.Since(start).Microseconds()) / float64(n), nil
}
