# The multi-node NixOS test of a declaration: the argument set of `pkgs.testers.runNixOSTest`,
# generated from nix/test-plan.nix (which is generated from nix/layout.nix). One node per host
# of the placement; on each, the packages its services need, the underlay VLAN, a unit that
# applies the host's share with netns-kit, and one unit per service instance running in its
# namespace, ordered by depends_on and active only once its readiness probe passes.
#
# Needs nixpkgs, so it is only parsed on machines without it (xtests/tests/nix_files.rs) and
# evaluated against a stub `pkgs` by xtests/tests/nix_layout.rs; see nix/README.md.
{
  pkgs,
  layout,
  workspace,
  file,
  plan ? import ./test-plan.nix { inherit file layout; },
  memorySize ? 1536,
}:
let
  inherit (builtins) attrNames listToAttrs mapAttrs map removeAttrs;
  # A package named in the plan: a nixpkgs attribute, or "workspace" (this repository's build).
  pkg = name: if name == "workspace" then workspace else pkgs.${name};
  topologyFile = (pkgs.formats.toml { }).generate "${layout.name}.toml" plan.topology;
  etcName = builtins.substring 5 (builtins.stringLength plan.topologyPath - 5) plan.topologyPath;

  unitOf =
    u:
    {
      inherit (u) description after requires wantedBy script;
      wants = u.wants or [ ];
      path = map pkg u.path ++ [ pkgs.bash pkgs.util-linux ];
    }
    // (
      if u.oneshot or false then
        {
          preStop = u.stop;
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
          };
        }
      else
        {
          inherit (u) environment preStart postStart;
          serviceConfig = {
            Type = "simple";
            # initdb and the readiness wait run inside the start job (TCG guests are slow).
            TimeoutStartSec = 600;
          };
        }
    );

  nodeOf =
    h: hp:
    { ... }:
    {
      virtualisation.vlans = hp.vlans;
      virtualisation.memorySize = memorySize;
      # The overlay's UDP (4789) and multicast, and the services' ports, cross eth1; the
      # tier policy is netns-kit's, in the router namespace.
      networking.firewall.enable = false;
      environment.systemPackages = map pkg hp.packages ++ [ pkgs.bash pkgs.util-linux ];
      environment.etc.${etcName}.source = topologyFile;
      users.users = listToAttrs (
        map (u: {
          name = u;
          value = {
            isSystemUser = true;
            group = u;
          };
        }) hp.users
      );
      users.groups = listToAttrs (map (u: { name = u; value = { }; }) hp.users);
      systemd.services = mapAttrs (_: unitOf) hp.units;
    };
in
{
  name = "${layout.name}-lab";
  nodes = mapAttrs nodeOf plan.hosts;
  inherit (plan) testScript;
}
