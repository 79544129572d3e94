"""Small UEA `.ts` files written in the archive's real format, for the loader and run tests."""


def write_ts(path, series, labels, classes, name="CharacterTrajectories", declared=None):
    """A .ts file as the archive writes them: @-headers, then one case per line, channels separated by ':'
    and the class label last."""
    dims = series[0].shape[1]
    head = [
        f"#A small {name} in the real format",
        f"@problemName {name}",
        "@timeStamps false",
        "@missing false",
        f"@univariate {'true' if dims == 1 else 'false'}",
        f"@dimensions {dims}",
        f"@equalLength {'true' if len({len(s) for s in series}) == 1 else 'false'}",
        f"@seriesLength {len(series[0])}",
        "@classLabel true " + " ".join(declared or classes),
        "@data",
    ]
    rows = [
        ":".join(",".join(f"{v:.6f}" for v in s[:, c]) for c in range(dims)) + f":{lab}"
        for s, lab in zip(series, labels)
    ]
    path.write_text("\n".join(head + rows) + "\n")
