package cli

import (
	"encoding/json"
	"time"

	"github.com/spf13/cobra"

	"taxlink/internal/sbom"
)

func sbomCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "sbom",
		Short: "Print this binary's software bill of materials (CycloneDX JSON)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, err := sbom.Current(time.Now())
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(doc)
		},
	}
}
