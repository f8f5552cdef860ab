"""`scarnet weights list | fetch NAME | path NAME | verify NAME`: pretrained encoders in the per-user cache."""
import os


def cmd_list(args):
    from nnunetv2_scarnet.weights import SOURCES, cached_encoder_path, weights_dir

    print(f"cache: {weights_dir()}")
    for name, source in SOURCES.items():
        state = cached_encoder_path(name) or "not fetched"
        print(f"{name:<8} {source.title}\n         licence {source.licence} ({source.licence_url})\n"
              f"         from {source.url}\n         cached: {state}")
    return 0


def cmd_fetch(args):
    from nnunetv2_scarnet.weights import cache_path
    from nnunetv2_scarnet.weights.fetch import fetch

    existed = not args.force and os.path.isfile(cache_path(args.name))
    path = fetch(args.name, file=args.file, sha256=args.sha256, force=args.force, progress=not args.quiet,
                 timeout=args.timeout)
    print(f"{args.name}: {'already in the cache' if existed else 'verified, converted and stored'}: {path}")
    return 0


def cmd_path(args):
    from nnunetv2_scarnet.weights import cached_encoder_path, get_source, weights_dir

    path = cached_encoder_path(get_source(args.name).name)
    if path is None:
        raise FileNotFoundError(f"{args.name} is not in the cache {weights_dir()}; run "
                                f"`scarnet weights fetch {args.name}`")
    print(path)
    return 0


def cmd_verify(args):
    from nnunetv2_scarnet.weights.fetch import verify

    print(verify(args.name))
    return 0


def register(sub) -> None:
    p = sub.add_parser("weights", help="download, verify and locate pretrained encoders (MedSAM, SAM)")
    wsub = p.add_subparsers(dest="weights_command", required=True)
    wsub.add_parser("list", help="the known encoders, their licences and what is cached").set_defaults(func=cmd_list)
    f = wsub.add_parser("fetch", help="download (or take --file), verify, convert and cache an encoder")
    f.add_argument("name")
    f.add_argument("--file", help="a file downloaded by hand instead of downloading it")
    f.add_argument("--sha256", help="expected SHA-256 of the downloaded/--file file (in addition to pinned ones)")
    f.add_argument("--force", action="store_true", help="fetch again even when the encoder is cached")
    f.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=cmd_fetch)
    for name, func, text in (("path", cmd_path, "print the cached encoder file"),
                             ("verify", cmd_verify, "re-check a cached encoder (checksum and strict load)")):
        q = wsub.add_parser(name, help=text)
        q.add_argument("name")
        q.set_defaults(func=func)
