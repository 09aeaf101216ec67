"""Seed 004's mobile sync manager, in Python, written from the seed's
description (its code is TypeScript for React Native): the local SQLite
schema it gives (equipment cache, sync queue, conflict log, buildings), edits
queued offline, `uploadPendingChanges` sending the queue in batches to
POST /api/v1/mobile/sync/batch, `handleConflict` (last writer wins by
`updated_at`: a newer local edit is sent again with `force: true`, an older
one takes the server's version and logs the conflict), and
`downloadUpdates` from GET /api/v1/mobile/equipment/building/{id}/updates
with `since` = the building's `synced_at`.

The seed's app sends single operations to per-entity endpoints too; the hub
serves the batch endpoint, so every upload goes through it (up to 50 queued
items per request, the seed's `getPendingSyncItems(limit: 50)`).

usage: mobile_app.py HUB TOKEN DB COMMAND [ARG]
  edit JSON       queue local edits: [{"operation", "entity_id", ...fields}]
  sync            upload the queue, then download every active building
  show ID         print the cached equipment row
Prints one JSON object.
"""

import json
import sqlite3
import sys
import time

import requests

SCHEMA = """
CREATE TABLE IF NOT EXISTS equipment (
  id TEXT PRIMARY KEY,
  building_id TEXT NOT NULL,
  name TEXT NOT NULL,
  type TEXT NOT NULL,
  status TEXT,
  location_x REAL,
  location_y REAL,
  location_z REAL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  synced_at INTEGER,
  sync_status TEXT DEFAULT 'pending',
  version INTEGER DEFAULT 1,
  metadata JSON
);
CREATE TABLE IF NOT EXISTS sync_queue (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  entity_type TEXT NOT NULL,
  entity_id TEXT NOT NULL,
  operation TEXT NOT NULL,
  payload JSON NOT NULL,
  created_at INTEGER NOT NULL,
  attempts INTEGER DEFAULT 0,
  last_attempt INTEGER,
  error TEXT
);
CREATE TABLE IF NOT EXISTS sync_conflicts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  entity_type TEXT NOT NULL,
  entity_id TEXT NOT NULL,
  local_version JSON NOT NULL,
  server_version JSON NOT NULL,
  created_at INTEGER NOT NULL,
  resolved BOOLEAN DEFAULT FALSE,
  resolution TEXT
);
CREATE TABLE IF NOT EXISTS buildings (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  address TEXT,
  status TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  synced_at INTEGER,
  full_sync_at INTEGER
);
"""

FIELDS = ["building_id", "name", "type", "status", "location_x", "location_y", "location_z"]


def now_ms():
    return int(time.time() * 1000)


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + ".%03dZ" % (ms % 1000)


class App:
    def __init__(self, hub, token, db):
        self.hub = hub.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = "Bearer " + token
        self.db = sqlite3.connect(db)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(SCHEMA)

    # --- offline operations (the seed's updateEquipment) ---
    def edit(self, edits):
        for edit in edits:
            operation = edit.pop("operation")
            entity_id = edit.pop("entity_id")
            stamp = now_ms()
            row = self.db.execute("SELECT * FROM equipment WHERE id = ?", (entity_id,)).fetchone()
            if operation == "delete":
                self.db.execute("DELETE FROM equipment WHERE id = ?", (entity_id,))
                payload = {"id": entity_id, "updated_at": stamp}
            else:
                current = dict(row) if row else {"id": entity_id, "created_at": stamp, "version": 0}
                current.update(edit)
                current["updated_at"] = stamp
                current["sync_status"] = "pending"
                self.save(current)
                payload = {k: current.get(k) for k in FIELDS + ["id", "updated_at", "version"]}
                payload.update({k: v for k, v in edit.items() if k not in FIELDS})
                if "building_id" in edit:
                    self.db.execute(
                        "INSERT OR IGNORE INTO buildings (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                        (edit["building_id"], edit["building_id"], stamp, stamp),
                    )
            self.db.execute(
                "INSERT INTO sync_queue (entity_type, entity_id, operation, payload, created_at) VALUES (?, ?, ?, ?, ?)",
                ("equipment", entity_id, operation, json.dumps(payload), stamp),
            )
        self.db.commit()
        return {"queued": len(edits)}

    def save(self, record):
        row = {k: record.get(k) for k in FIELDS}
        self.db.execute(
            """INSERT OR REPLACE INTO equipment
               (id, building_id, name, type, status, location_x, location_y, location_z,
                created_at, updated_at, synced_at, sync_status, version, metadata)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                record["id"], row["building_id"] or "", row["name"] or "", row["type"] or "",
                row["status"], row["location_x"], row["location_y"], row["location_z"],
                record.get("created_at") or record.get("updated_at") or 0,
                record.get("updated_at") or 0, record.get("synced_at"),
                record.get("sync_status", "synced"), record.get("version") or 0,
                json.dumps(record.get("metadata")) if record.get("metadata") is not None else None,
            ),
        )

    # --- upload (the seed's uploadPendingChanges / handleConflict) ---
    def upload(self):
        done = {"synced": 0, "conflicts": 0, "forced": 0, "errors": 0}
        queue = self.db.execute(
            "SELECT * FROM sync_queue WHERE error IS NULL ORDER BY id LIMIT 50"
        ).fetchall()
        if not queue:
            return done
        operations = [
            {
                "entity_type": item["entity_type"],
                "entity_id": item["entity_id"],
                "operation": item["operation"],
                "payload": json.loads(item["payload"]),
                "local_time": iso(item["created_at"]),
            }
            for item in queue
        ]
        answer = self.batch(operations)
        by_id = {}
        for item in queue:
            by_id.setdefault(item["entity_id"], []).append(item)
        for entity_id in answer["success"]:
            for item in by_id.get(entity_id, []):
                self.db.execute("DELETE FROM sync_queue WHERE id = ?", (item["id"],))
                self.db.execute("UPDATE equipment SET sync_status = 'synced', synced_at = ? WHERE id = ?", (now_ms(), entity_id))
                done["synced"] += 1
        for conflict in answer["conflicts"]:
            done["conflicts"] += 1
            for item in by_id.get(conflict["entity_id"], []):
                if self.handle_conflict(item, conflict["server_version"]):
                    done["forced"] += 1
        for error in answer["errors"]:
            done["errors"] += 1
            for item in by_id.get(error.get("entity_id"), []):
                self.db.execute(
                    "UPDATE sync_queue SET attempts = attempts + 1, last_attempt = ?, error = ? WHERE id = ?",
                    (now_ms(), json.dumps(error), item["id"]),
                )
        self.db.commit()
        return done

    def batch(self, operations):
        response = self.session.post(self.hub + "/api/v1/mobile/sync/batch", json={"operations": operations}, timeout=10)
        response.raise_for_status()
        return response.json()

    def handle_conflict(self, item, server_version):
        local_version = json.loads(item["payload"])
        if local_version.get("updated_at", 0) > server_version.get("updated_at", 0):
            # Local is newer: force it (the seed's strategy 1).
            forced = dict(local_version, force=True)
            answer = self.batch([{
                "entity_type": item["entity_type"],
                "entity_id": item["entity_id"],
                "operation": item["operation"],
                "payload": forced,
                "local_time": iso(item["created_at"]),
            }])
            if item["entity_id"] in answer["success"]:
                self.db.execute("DELETE FROM sync_queue WHERE id = ?", (item["id"],))
                return True
            return False
        # Server wins (strategy 2): take its version and log the conflict.
        self.save(dict(server_version, sync_status="synced", synced_at=now_ms()))
        self.db.execute("DELETE FROM sync_queue WHERE id = ?", (item["id"],))
        self.db.execute(
            """INSERT INTO sync_conflicts (entity_type, entity_id, local_version, server_version,
               created_at, resolution) VALUES (?, ?, ?, ?, ?, 'server_wins')""",
            (item["entity_type"], item["entity_id"], json.dumps(local_version), json.dumps(server_version), now_ms()),
        )
        return False

    # --- download (the seed's downloadUpdates) ---
    def download(self):
        done = {"updates": 0, "deletes": 0}
        for building in self.db.execute("SELECT * FROM buildings").fetchall():
            since = building["synced_at"] or 0
            response = self.session.get(
                "%s/api/v1/mobile/equipment/building/%s/updates" % (self.hub, building["id"]),
                params={"since": since},
                timeout=10,
            )
            response.raise_for_status()
            updates = response.json()
            for update in updates["updates"]:
                equipment = update["equipment"]
                pending = self.db.execute(
                    "SELECT 1 FROM sync_queue WHERE entity_id = ?", (equipment["id"],)
                ).fetchone()
                if not pending:
                    self.save(dict(equipment, sync_status="synced", synced_at=now_ms()))
                    done["updates"] += 1
            for entity_id in updates["deletes"]:
                self.db.execute("DELETE FROM equipment WHERE id = ?", (entity_id,))
                done["deletes"] += 1
            self.db.execute(
                "UPDATE buildings SET synced_at = ? WHERE id = ?", (updates["last_sync_unix"], building["id"])
            )
        self.db.commit()
        return done

    def sync(self):
        try:
            result = self.upload()
            result.update(self.download())
            result["online"] = True
        except requests.RequestException as error:
            # Offline or a fault: everything stays queued for the next round.
            result = {"online": False, "error": type(error).__name__}
        result["queued"] = self.db.execute("SELECT count(*) FROM sync_queue").fetchone()[0]
        result["conflicts_logged"] = self.db.execute("SELECT count(*) FROM sync_conflicts").fetchone()[0]
        return result


def main():
    hub, token, db, command = sys.argv[1:5]
    app = App(hub, token, db)
    if command == "edit":
        print(json.dumps(app.edit(json.loads(sys.argv[5]))))
    elif command == "sync":
        print(json.dumps(app.sync()))
    elif command == "show":
        row = app.db.execute("SELECT * FROM equipment WHERE id = ?", (sys.argv[5],)).fetchone()
        print(json.dumps(dict(row) if row else None))
    else:
        raise SystemExit("unknown command " + command)


if __name__ == "__main__":
    main()
