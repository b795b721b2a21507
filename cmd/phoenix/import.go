package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/phoenixhv/phoenix/spec"
	"github.com/phoenixhv/phoenix/spec/importer"
)

func newImportCmd() *cobra.Command {
	var lxc, hypervisor, scripts, out, node, name string
	var world bool
	cmd := &cobra.Command{
		Use:   "import --lxc FILE [--hypervisor FILE] [--scripts DIR] --out DIR [--world]",
		Short: "Write phoenix specs from the original bash system's configuration",
		Long: `Read the original phoenix_hypervisor system's phoenix_lxc_configs.json (and its
phoenix_hypervisor_config.json) and write phoenix specs into --out: a Cluster, the
templates and containers with their lineage, user Features for its features and
application scripts (from --scripts, its bin/ directory), and IMPORT-REPORT.md,
which names every field not carried over, by JSON path, with why. --world also
writes a world.yaml for phoenix sim built from the same config.`,
		Args: noArgs("the files are given with --lxc, --hypervisor and --out"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			lxcData, err := os.ReadFile(lxc)
			if err != nil {
				return err
			}
			var hvData []byte
			if hypervisor != "" {
				if hvData, err = os.ReadFile(hypervisor); err != nil {
					return err
				}
			}
			opt := importer.Options{LXCFile: lxc, HypervisorFile: hypervisor, Node: node, ClusterName: name, World: world}
			if scripts != "" {
				if opt.Scripts, err = readScripts(scripts); err != nil {
					return err
				}
			}
			res, err := importer.Import(lxcData, hvData, opt)
			if err != nil {
				return fmt.Errorf("%s: %w", lxc, err)
			}
			if err := res.Write(out); err != nil {
				return err
			}
			set, err := spec.Load(out)
			w := cmd.ErrOrStderr()
			for _, f := range res.Findings {
				fmt.Fprintf(w, "not carried: %s %s: %s\n", filepath.Base(f.File), f.Path, f.Why)
			}
			if err != nil {
				return fmt.Errorf("the imported specs do not validate; edit them in %s:\n%w", out, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d templates and containers, %d features into %s; %d fields not carried over (%s)\n",
				len(set.Guests), len(set.Features), out, len(res.Findings), filepath.Join(out, "IMPORT-REPORT.md"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&lxc, "lxc", "", "the original's phoenix_lxc_configs.json")
	f.StringVar(&hypervisor, "hypervisor", "", "the original's phoenix_hypervisor_config.json: storages, bridge, driver runfile")
	f.StringVar(&scripts, "scripts", "", "the original's bin/ directory: application and feature scripts become user Features")
	f.StringVar(&out, "out", "", "the directory to write the specs into")
	f.StringVar(&node, "node", "phoenix", "the Proxmox VE node the guests are on (the original's files do not name it)")
	f.StringVar(&name, "name", "phoenix-lab", "the Cluster document's name (the deployment)")
	f.BoolVar(&world, "world", false, "also write world.yaml, a simulated cluster for phoenix sim built from the same config")
	_ = cmd.MarkFlagRequired("lxc")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// readScripts reads the shell scripts under dir, by their path in it.
func readScripts(dir string) (map[string][]byte, error) {
	scripts := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".sh" {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		scripts[filepath.ToSlash(rel)] = b
		return err
	})
	return scripts, err
}
