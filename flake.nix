{
  description = "netns-kit and the ecomm three-tier lab: typed Linux network namespaces, a declarative topology, and an e-commerce stack that proves them";

  # A fixed nixpkgs commit whose default rustc (1.91.1) satisfies the workspace's
  # rust-version (1.89). What was read, where, and how to re-check it: nix/PIN.md;
  # every attribute and option this flake names: nix/checked.tsv.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/09e4b46f8d7edd81c7b1d35a128ff7ebd88a950e";

  outputs = { self, nixpkgs }:
    let
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
      # The environment, declared once; its resolved layout needs no nixpkgs (nix/layout.nix).
      declaration = ./ecomm-services/deploy/three-tier.toml;
      layout = import ./nix/layout.nix { file = declaration; };
      lib = pkgs.lib;
      # Everything the tests and the lab call at run time.
      runtimeTools = with pkgs; [ iproute2 nftables redis postgresql_15 curl apacheHttpd wrk nginx qemu_kvm busybox cpio zstd graphviz ];
      src = lib.cleanSourceWith {
        src = ./.;
        filter = path: type: !(lib.hasInfix "/target" path);
      };
      workspace = pkgs.rustPlatform.buildRustPackage {
        pname = "ecomm-lab";
        version = "0.1.0";
        inherit src;
        cargoLock.lockFile = ./Cargo.lock;
        nativeBuildInputs = [ pkgs.pkg-config ];
        # The privileged, database and VM suites need root and real daemons: they run in
        # the checks below and in `just test`, not in the sandboxed build.
        doCheck = false;
      };
    in {
      packages.${system} = {
        default = workspace;
        ecomm-lab = workspace;
      };

      devShells.${system}.default = pkgs.mkShell {
        inputsFrom = [ workspace ];
        packages = runtimeTools ++ (with pkgs; [ just cargo rustc clippy rustfmt cargo-nextest ]);
      };

      checks.${system} = {
        # Unprivileged tests: validation, proptests, rendering; the privileged ones skip.
        unit = workspace.overrideAttrs (old: {
          pname = "ecomm-lab-unit";
          doCheck = true;
          nativeCheckInputs = runtimeTools;
          checkPhase = ''
            runHook preCheck
            cargo test --workspace --lib --offline
            runHook postCheck
          '';
        });
        fmt = pkgs.runCommand "ecomm-lab-fmt" { nativeBuildInputs = [ pkgs.cargo pkgs.rustfmt ]; } ''
          cd ${src} && cargo fmt --all -- --check && touch $out
        '';
        # One NixOS VM per host of the declaration's placement, generated from it
        # (nix/layout.nix -> nix/test-plan.nix -> nix/nixos-test.nix): the overlay, the
        # services in their namespaces, and what the shared scenarios (xtests/src/scenarios)
        # prove on the VM backend (isolation both ways, routing over both backend hosts,
        # crash() and block() of a backend host).
        lab = pkgs.testers.runNixOSTest (import ./nix/nixos-test.nix {
          inherit pkgs layout workspace;
          file = declaration;
        });
        # The single-machine check: validate, apply the whole file, destroy, nothing left.
        apply-destroy = pkgs.testers.runNixOSTest {
          name = "three-tier-apply-destroy";
          nodes.machine = { ... }: {
            virtualisation.memorySize = 2048;
            environment.systemPackages = runtimeTools ++ [ workspace ];
          };
          testScript = ''
            machine.wait_for_unit("multi-user.target")
            machine.succeed("netns-kit validate ${declaration}")
            machine.succeed("netns-kit apply ${declaration} --name nixcheck")
            machine.succeed("netns-kit exec nixcheck gateway -- ip -brief addr")
            machine.succeed("netns-kit destroy nixcheck")
            machine.fail("ip netns list | grep nixcheck")
          '';
        };
      };
    };
}
