package notekey

import (
	"testing"

	"golang.org/x/mod/sumdb/note"

	"taxlink/internal/pki"
)

func TestSignOpen(t *testing.T) {
	k, _ := pki.NewKey()
	other, _ := pki.NewKey()
	s, err := NewSigner("hub:kiko", k)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: "taxlink/dev/hub:kiko/ledger\n3\nAAAA\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewVerifier("hub:kiko", &k.PublicKey)
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Errorf("own signature refused: %v", err)
	}
	wrong, _ := NewVerifier("hub:kiko", &other.PublicKey)
	if _, err := note.Open(msg, note.VerifierList(wrong)); err == nil {
		t.Errorf("another key's verifier accepted the note")
	}
	renamed, _ := NewVerifier("hub:other", &k.PublicKey)
	if _, err := note.Open(msg, note.VerifierList(renamed)); err == nil {
		t.Errorf("a verifier with another name accepted the note")
	}
	tampered := append([]byte(nil), msg...)
	tampered[len("taxlink/dev/hub:kiko/ledger\n")] = '4'
	if _, err := note.Open(tampered, note.VerifierList(v)); err == nil {
		t.Errorf("tampered note accepted")
	}
}
