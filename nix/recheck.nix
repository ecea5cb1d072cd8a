# Re-checks nix/checked.tsv against a nixpkgs source tree: does every listed package, function and
# NixOS option exist there, and is the default rustc at least the workspace's rust-version?
# It uses builtins only, so it also works where a tree is on disk but flakes are not set up.
#
#   nix-instantiate --eval --strict --json nix/recheck.nix \
#     --arg nixpkgs 'builtins.fetchTarball "https://github.com/NixOS/nixpkgs/archive/<rev>.tar.gz"'
#
# Kinds: package/function (an attribute path of pkgs), option (a NixOS option path; `a.<name>.b`
# is the sub-option b of the attrsOf-submodule option a), driver (a `def <name>(` in the NixOS
# test driver's Python sources), input (not looked up).
#
# prints { checked, missing, rustc, rustOk, rustVersion }. An empty `missing` and `rustOk = true`
# are what the pin needs. See nix/PIN.md for the whole procedure.
{
  nixpkgs,
  system ? "x86_64-linux",
  tsv ? ./checked.tsv,
  cargoToml ? ../Cargo.toml,
}:
let
  inherit (builtins)
    compareVersions
    filter
    getAttr
    hasAttr
    head
    isAttrs
    isString
    length
    map
    readFile
    seq
    split
    substring
    tail
    tryEval
    ;

  pkgs = import nixpkgs {
    inherit system;
    config = { };
    overlays = [ ];
  };

  # Options the flake sets: the base modules plus the VM module every runNixOSTest node imports.
  nixosOptions =
    (import (nixpkgs + "/nixos/lib/eval-config.nix") {
      inherit system;
      modules = [ (nixpkgs + "/nixos/modules/virtualisation/qemu-vm.nix") ];
    }).options;

  strings = l: filter isString l;
  lines = filter (l: l != "" && substring 0 1 l != "#") (strings (split "\n" (readFile tsv)));
  rows = map (l: strings (split "\t" l)) lines;
  # The first non-comment line is the header (name, kind, ...).
  body = tail rows;

  attrPath = name: strings (split "\\." name);

  # Walks an attribute path; only the last value is forced (to catch `throw` aliases of removed packages).
  lookup =
    set: path:
    if path == [ ] then
      (tryEval (seq set true)).success
    else
      isAttrs set && hasAttr (head path) set && lookup (getAttr (head path) set) (tail path);

  # `a.b.<name>.c`: the option a.b (an attrsOf submodule), then c among its sub-options.
  splitAtName =
    path:
    let
      go =
        before: rest:
        if rest == [ ] then
          null
        else if head rest == "<name>" then
          {
            inherit before;
            after = tail rest;
          }
        else
          go (before ++ [ (head rest) ]) (tail rest);
    in
    go [ ] path;
  walk =
    set: path:
    if path == [ ] then
      set
    else if isAttrs set && hasAttr (head path) set then
      walk (getAttr (head path) set) (tail path)
    else
      null;
  optionPresent =
    path:
    let
      at = splitAtName path;
      outer = walk nixosOptions at.before;
    in
    if at == null then
      lookup nixosOptions path
    else
      isAttrs outer && hasAttr "type" outer && lookup (outer.type.getSubOptions [ ]) at.after;

  # The test driver's Python API (kind "driver"): a `def <name>(` in its sources, wherever
  # the version at hand keeps them.
  driverText = builtins.concatStringsSep "\n" (
    map readFile (
      filter builtins.pathExists (
        map (f: nixpkgs + ("/nixos/lib/test-driver/" + f)) [
          "src/test_driver/machine/__init__.py"
          "src/test_driver/machine.py"
          "src/test_driver/driver.py"
          "test_driver/machine.py"
          "test_driver/driver.py"
        ]
      )
    )
  );
  driverHas = name: length (split "def ${name}[(]" driverText) > 1;

  present =
    row:
    let
      name = head row;
      kind = head (tail row);
    in
    if kind == "package" || kind == "function" then
      lookup pkgs (attrPath name)
    else if kind == "option" then
      optionPresent (attrPath name)
    else if kind == "driver" then
      driverHas name
    else
      true; # "input": a flake output of nixpkgs itself, nothing to look up in the tree

  missing = map head (filter (row: !(present row)) body);

  rustVersion = (builtins.fromTOML (readFile cargoToml)).workspace.package.rust-version;
  rustc = pkgs.rustc.version;
in
{
  checked = length body;
  inherit missing rustc rustVersion;
  rustOk = compareVersions rustc rustVersion >= 0;
}
