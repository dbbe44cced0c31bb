"""A fake Hugging Face Hub on 127.0.0.1 for tests: the HTTP endpoints huggingface_hub 2.x really calls.

Covered (found by reading huggingface_hub's hf_api.py, _commit_api.py, lfs.py and file_download.py):

    POST /api/repos/create                                  create_repo (409 if it exists)
    POST /api/validate-yaml                                 the card check create_commit runs first
    GET  /api/agent-harnesses                               huggingface_hub's agent registry (empty)
    GET  /api/{models,datasets}/NS/NAME[/revision/REV]      repo_info
    GET  /api/{type}s/NS/NAME/tree/REV[/PATH]               list_repo_tree (HfFileSystem, datasets)
    POST /api/{type}s/NS/NAME/paths-info/REV                get_paths_info
    POST /api/{type}s/NS/NAME/preupload/REV                 regular or LFS upload mode per file
    POST /[datasets/]NS/NAME.git/info/lfs/objects/batch     LFS batch: where to PUT each object
    PUT  /_lfs/OID                                          the LFS object itself (sha256 checked)
    POST /api/{type}s/NS/NAME/commit/REV                    the NDJSON commit
    HEAD/GET /[datasets/]NS/NAME/resolve/REV/PATH           downloads, with X-Repo-Commit, ETag,
                                                            X-Linked-Etag/-Size for LFS files, Range

Tokens: `write_token` may write, `read_token` gets 403 on writes, anything else 401 (the 401 message
echoes the token on purpose, so tests prove the client side redacts it). Files are kept in a temp
folder, content-addressed. `requests` records every request; `unknown` those no route matched.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_SUFFIXES = (".safetensors", ".gguf", ".parquet", ".arrow", ".bin", ".png", ".pt")
KNOWN_LICENSES = {"apache-2.0", "mit", "other", "cc-by-4.0", "cc-by-sa-4.0", "llama3", "gemma", "openrail"}
TYPES = {"models": "model", "datasets": "dataset"}
PREFIX = {"model": "", "dataset": "datasets/"}


@dataclass
class Entry:
    size: int
    sha256: str
    git_oid: str
    lfs: bool


@dataclass
class Repo:
    type: str
    id: str
    private: bool
    commits: list[tuple[str, dict[str, Entry]]] = field(default_factory=list)  # (sha, files), newest last

    def snapshot(self, revision: str) -> tuple[str, dict[str, Entry]] | None:
        if revision == "main":
            return self.commits[-1]
        return next((c for c in self.commits if c[0] == revision), None)


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None,
                 extra: dict | None = None):
        self.status, self.message, self.code, self.headers, self.extra = status, message, code, headers or {}, extra


def validate_card(content: str, repo_type: str) -> list[str]:
    """The checks the real Hub makes that a groundtune card could fail: YAML, license id, model-index shape."""
    match = re.match(r"^---\n(.*?)\n---\n", content, re.S)
    if not match:
        return []
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as e:
        return [f"YAML parse error: {e}"]
    if not isinstance(meta, dict):
        return ["metadata must be a mapping"]
    errors = []
    if "license" in meta and meta["license"] not in KNOWN_LICENSES:
        errors.append(f'"license" must be one of the Hub license ids; got "{meta["license"]}"')
    for entry in meta.get("model-index") or []:
        if not entry.get("name") or not all(r.get("task", {}).get("type") and r.get("dataset", {}).get("type")
                                             and r.get("metrics") for r in entry.get("results", [])):
            errors.append('"model-index" entries need name, task.type, dataset.type and metrics')
    return errors


class FakeHub:
    def __init__(self, root: Path, write_token: str = "hf_write_ok", read_token: str = "hf_read_only"):
        self.root = Path(root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        self.write_token, self.read_token = write_token, read_token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.unknown: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    # ---- lifecycle

    def start(self) -> str:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # ---- storage

    def object_path(self, sha256: str) -> Path:
        return self.root / "objects" / sha256

    def store(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.object_path(digest).write_bytes(data)
        return digest

    def read(self, repo_type: str, repo_id: str, path: str, revision: str = "main") -> bytes:
        """Test helper: a file's bytes as committed."""
        _, files = self.repos[(repo_type, repo_id)].snapshot(revision)
        return self.object_path(files[path].sha256).read_bytes()

    def add_folder(self, repo_type: str, repo_id: str, folder: Path) -> None:
        """Test helper: a public repo holding `folder`'s files, committed without HTTP."""
        files = {}
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            data = path.read_bytes()
            files[path.relative_to(folder).as_posix()] = Entry(len(data), self.store(data), git_blob_oid(data),
                                                               lfs=path.suffix == ".safetensors")
        repo = Repo(repo_type, repo_id, private=False)
        self.new_commit(repo, files, "seeded by the test")
        self.repos[(repo_type, repo_id)] = repo

    def files(self, repo_type: str, repo_id: str) -> dict[str, Entry]:
        return self.repos[(repo_type, repo_id)].commits[-1][1]

    # ---- auth and lookup

    def auth(self, headers, write: bool) -> str | None:
        value = headers.get("authorization") or ""
        token = value[7:] if value.lower().startswith("bearer ") else None
        if token is None:
            if write:
                raise HubError(401, "You must be authenticated to access this resource.")
            return None
        if token not in (self.write_token, self.read_token):
            raise HubError(401, f"Invalid credentials in Authorization header (token {token})")
        if write and token != self.write_token:
            raise HubError(403, "You don't have the rights to write to this namespace with a read token.")
        return token

    def repo(self, repo_type: str, repo_id: str, token: str | None) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and token is None):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def snapshot(self, repo: Repo, revision: str):
        found = repo.snapshot(unquote(revision))
        if found is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return found

    def commit_url(self, repo: Repo, sha: str) -> str:
        return f"{self.url}/{PREFIX[repo.type]}{repo.id}/commit/{sha}"

    def new_commit(self, repo: Repo, files: dict[str, Entry], message: str) -> str:
        parent = repo.commits[-1][0] if repo.commits else ""
        listing = json.dumps({p: e.git_oid for p, e in sorted(files.items())})
        sha = hashlib.sha1(f"{parent}\n{message}\n{listing}".encode()).hexdigest()
        repo.commits.append((sha, files))
        return sha

    # ---- tree entries

    def entry_json(self, path: str, e: Entry) -> dict:
        out = {"type": "file", "oid": e.git_oid, "size": e.size, "path": path}
        if e.lfs:
            out["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": 134}
        return out

    def tree(self, files: dict[str, Entry], prefix: str, recursive: bool) -> list[dict]:
        prefix = prefix.strip("/")
        under = {p: e for p, e in files.items() if not prefix or p.startswith(prefix + "/")}
        if prefix and not under:
            raise HubError(404, f"{prefix} does not exist", "EntryNotFound")
        out, folders = [], set()
        for path, e in sorted(under.items()):
            rest = path[len(prefix) + 1:] if prefix else path
            parts = rest.split("/")
            for i in range(1, len(parts)):
                folder = "/".join(([prefix] if prefix else []) + parts[:i])
                if (recursive or i == 1) and folder not in folders:
                    folders.add(folder)
                    out.append({"type": "directory", "oid": hashlib.sha1(folder.encode()).hexdigest(), "size": 0,
                                "path": folder})
            if recursive or len(parts) == 1:
                out.append(self.entry_json(path, e))
        return out


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    # ---- plumbing

    def body(self) -> bytes:
        """The request body, read once (an error reply drains what a route did not read)."""
        if self._body is None:
            length = int(self.headers.get("content-length") or 0)
            self._body = self.rfile.read(length) if length else b""
        return self._body

    def send(self, status: int, payload=None, headers: dict | None = None, raw: bytes | None = None,
             head: bool = False) -> None:
        data = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        headers = {"Content-Length": len(data), **(headers or {})}
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query, self._body = parse_qs(url.query), None
        with self.hub.lock:
            self.hub.requests.append((method, url.path))
        try:
            for pattern, name in ROUTES:
                m = re.fullmatch(pattern, url.path)
                if m and hasattr(self, f"{method}_{name}"):
                    return getattr(self, f"{method}_{name}")(**m.groupdict())
            with self.hub.lock:
                self.hub.unknown.append((method, url.path))
            raise HubError(404, f"no route for {method} {url.path}")
        except HubError as e:
            headers = dict(e.headers)
            if e.code:
                headers["X-Error-Code"] = e.code
            headers["X-Error-Message"] = e.message
            self.body() if method in ("POST", "PUT") else None
            self.send(e.status, {"error": e.message, **(e.extra or {})}, headers, head=method == "HEAD")

    def do_GET(self):
        self.dispatch("GET")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    # ---- repos

    def POST_create(self):
        self.hub.auth(self.headers, write=True)
        payload = json.loads(self.body())
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        url = f"{self.hub.url}/{PREFIX[repo_type]}{repo_id}"
        with self.hub.lock:
            if (repo_type, repo_id) in self.hub.repos:
                raise HubError(409, f"You already created this {repo_type} repo", extra={"url": url})
            repo = Repo(repo_type, repo_id, payload.get("visibility") == "private")
            self.hub.new_commit(repo, {}, "initial commit")
            self.hub.repos[(repo_type, repo_id)] = repo
        self.send(200, {"url": url, "name": repo_id})

    def POST_validate(self):
        self.hub.auth(self.headers, write=False)
        payload = json.loads(self.body())
        errors = validate_card(payload["content"], payload.get("repoType", "model"))
        if errors:
            raise_payload = {"errors": [{"message": m} for m in errors], "warnings": []}
            return self.send(400, raise_payload, {"X-Error-Message": "; ".join(errors)})
        self.send(200, {"errors": [], "warnings": []})

    def GET_info(self, kind, repo_id, rev=None):
        token = self.hub.auth(self.headers, write=False)
        repo = self.hub.repo(TYPES[kind], repo_id, token)
        sha, files = self.hub.snapshot(repo, rev or "main")
        self.send(200, {"id": repo.id, "_id": repo.id, "sha": sha, "private": repo.private, "disabled": False,
                        "gated": False, "downloads": 0, "likes": 0, "tags": [], "lastModified": "2025-01-01T00:00:00.000Z",
                        "siblings": [{"rfilename": p} for p in sorted(files)]})

    def GET_tree(self, kind, repo_id, rev, path=""):
        token = self.hub.auth(self.headers, write=False)
        _, files = self.hub.snapshot(self.hub.repo(TYPES[kind], repo_id, token), rev)
        recursive = (self.query.get("recursive") or ["false"])[0].lower() == "true"
        self.send(200, self.hub.tree(files, unquote(path or ""), recursive))

    def POST_paths(self, kind, repo_id, rev):
        token = self.hub.auth(self.headers, write=False)
        _, files = self.hub.snapshot(self.hub.repo(TYPES[kind], repo_id, token), rev)
        form = parse_qs(self.body().decode())
        out = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in files:
                out.append(self.hub.entry_json(path, files[path]))
            elif any(p.startswith(path + "/") for p in files):
                out.append({"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0,
                            "path": path})
        self.send(200, out)

    def GET_harnesses(self):  # huggingface_hub's agent detection registry: none here
        self.send(200, {"standardEnvVars": [], "harnesses": {}})

    # ---- uploads

    def POST_preupload(self, kind, repo_id, rev):
        token = self.hub.auth(self.headers, write=True)
        _, files = self.hub.snapshot(self.hub.repo(TYPES[kind], repo_id, token), rev)
        out = []
        for f in json.loads(self.body())["files"]:
            sample = base64.b64decode(f["sample"])
            lfs = f["path"].endswith(LFS_SUFFIXES) or b"\0" in sample or f["size"] > 10_000_000
            old = files.get(f["path"])
            oid = None if old is None else (old.sha256 if old.lfs else old.git_oid)
            out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                        "oid": oid})
        self.send(200, {"files": out, "commitOid": None})

    def POST_lfs_batch(self, prefix, repo_id):
        token = self.hub.auth(self.headers, write=True)
        self.hub.repo("dataset" if prefix else "model", repo_id, token)
        objects = []
        for obj in json.loads(self.body())["objects"]:
            item = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not self.hub.object_path(obj["oid"]).is_file():
                item["actions"] = {"upload": {"href": f"{self.hub.url}/_lfs/{obj['oid']}", "header": {}}}
            objects.append(item)
        self.send(200, {"transfer": "basic", "objects": objects})

    def PUT_lfs_object(self, oid):
        data = self.body()
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, "sha256 of the uploaded object does not match its oid")
        self.hub.store(data)
        self.send(200, {})

    def POST_commit(self, kind, repo_id, rev):
        token = self.hub.auth(self.headers, write=True)
        repo = self.hub.repo(TYPES[kind], repo_id, token)
        lines = [json.loads(line) for line in self.body().decode().splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        with self.hub.lock:
            head_sha, head = self.hub.snapshot(repo, rev)
            if header.get("parentCommit") and header["parentCommit"] != head_sha:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head)
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "file":
                    data = base64.b64decode(value["content"])
                    files[value["path"]] = Entry(len(data), self.hub.store(data), git_blob_oid(data), lfs=False)
                elif key == "lfsFile":
                    if not self.hub.object_path(value["oid"]).is_file():
                        raise HubError(400, f"LFS object {value['oid']} for {value['path']} was never uploaded")
                    data = self.hub.object_path(value["oid"]).read_bytes()
                    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{value['oid']}\nsize {len(data)}\n"
                    files[value["path"]] = Entry(len(data), value["oid"], git_blob_oid(pointer.encode()), lfs=True)
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    files = {p: e for p, e in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            sha = self.hub.new_commit(repo, files, header.get("summary", ""))
        self.send(200, {"commitUrl": self.hub.commit_url(repo, sha), "commitOid": sha, "pullRequestUrl": None,
                        "success": True})

    # ---- downloads

    def resolve(self, prefix, repo_id, rev, path, head: bool):
        token = self.hub.auth(self.headers, write=False)
        repo = self.hub.repo("dataset" if prefix else "model", repo_id, token)
        sha, files = self.hub.snapshot(repo, rev)
        entry = files.get(unquote(path))
        if entry is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "ETag": f'"{entry.git_oid}"', "Accept-Ranges": "bytes"}
        if entry.lfs:
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": entry.size})
        data = b"" if head else self.hub.object_path(entry.sha256).read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("range") or "")
        if match and not head:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else entry.size - 1
            data = data[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{entry.size}"
            return self.send(206, headers=headers, raw=data)
        if head:
            headers["Content-Length"] = entry.size
        self.send(200, headers=headers, raw=data, head=head)

    def GET_resolve(self, **kw):
        self.resolve(**kw, head=False)

    def HEAD_resolve(self, **kw):
        self.resolve(**kw, head=True)


_ID = r"(?P<repo_id>[^/]+/[^/]+?)"
ROUTES = [
    (r"/api/repos/create", "create"),
    (r"/api/validate-yaml", "validate"),
    (r"/api/agent-harnesses", "harnesses"),
    (rf"/api/(?P<kind>models|datasets)/{_ID}(?:/revision/(?P<rev>[^/]+))?", "info"),
    (rf"/api/(?P<kind>models|datasets)/{_ID}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?", "tree"),
    (rf"/api/(?P<kind>models|datasets)/{_ID}/paths-info/(?P<rev>[^/]+)", "paths"),
    (rf"/api/(?P<kind>models|datasets)/{_ID}/preupload/(?P<rev>[^/]+)", "preupload"),
    (rf"/api/(?P<kind>models|datasets)/{_ID}/commit/(?P<rev>[^/]+)", "commit"),
    (rf"/(?P<prefix>datasets/)?{_ID}\.git/info/lfs/objects/batch", "lfs_batch"),
    (r"/_lfs/(?P<oid>[0-9a-f]{64})", "lfs_object"),
    (rf"/(?P<prefix>datasets/)?{_ID}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
]
