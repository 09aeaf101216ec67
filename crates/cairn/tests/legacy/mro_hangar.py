"""Seed 000's hangar sync worker, as the seed gives it (OfflineSyncEngine),
driven from the command line by Cairn's tests. Unchanged from the seed
but for the driver at the end.

usage: mro_hangar.py HUB_URL TOKEN DB queue JSON_LIST   (items: part_serial, action_type, payload)
       mro_hangar.py HUB_URL TOKEN DB sync
"""
import sqlite3
import hashlib
import json
import time
import logging
import os
from datetime import datetime, timezone
from typing import Dict, Optional, Tuple
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

# Structured logging configuration for audit compliance
class ComplianceJSONFormatter(logging.Formatter):
    def format(self, record):
        log_obj = {
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "level": record.levelname,
            "component": "mro_sync_engine",
            "message": record.getMessage(),
            "compliance_boundary": getattr(record, "compliance_boundary", "standard"),
            "event_id": getattr(record, "event_id", None),
            "trace_id": getattr(record, "trace_id", None)
        }
        return json.dumps(log_obj, separators=(",", ":"))

logger = logging.getLogger("mro_sync")
logger.setLevel(logging.INFO)
handler = logging.StreamHandler()
handler.setFormatter(ComplianceJSONFormatter())
logger.addHandler(handler)

class OfflineSyncEngine:
    def __init__(self, db_path: str, api_base_url: str, jwt_token: str):
        self.db_path = db_path
        self.api_base_url = api_base_url.rstrip("/")
        self.session = self._build_session()
        self.session.headers.update({"Authorization": f"Bearer {jwt_token}"})
        self._init_db()

    def _build_session(self) -> requests.Session:
        session = requests.Session()
        # Exponential backoff with jitter for transient network failures
        retry_strategy = Retry(
            total=5,
            backoff_factor=1.5,
            status_forcelist=[429, 500, 502, 503, 504],
            allowed_methods=["POST"]
        )
        adapter = HTTPAdapter(max_retries=retry_strategy)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def _init_db(self) -> None:
        with sqlite3.connect(self.db_path) as conn:
            conn.executescript("""
                CREATE TABLE IF NOT EXISTS sync_queue (
                    local_seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    payload_hash TEXT NOT NULL UNIQUE,
                    part_serial TEXT NOT NULL,
                    action_type TEXT NOT NULL,
                    payload_json TEXT NOT NULL,
                    status TEXT DEFAULT 'PENDING',
                    created_utc TEXT NOT NULL,
                    compliance_flag TEXT DEFAULT 'CLEAN'
                );
                CREATE INDEX IF NOT EXISTS idx_part_serial ON sync_queue(part_serial);
                CREATE INDEX IF NOT EXISTS idx_status ON sync_queue(status);
            """)

    def _generate_hash(self, payload: Dict) -> str:
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def queue_maintenance_action(self, part_serial: str, action_type: str, payload: Dict) -> bool:
        payload_hash = self._generate_hash(payload)
        payload_json = json.dumps(payload)
        created_utc = datetime.now(timezone.utc).isoformat()
        trace_id = f"TRC-{int(time.time()*1000)}"

        # Compliance boundary: Enforce local serial uniqueness for traceability
        # Prevents duplicate airworthiness records during offline periods
        try:
            with sqlite3.connect(self.db_path) as conn:
                cursor = conn.execute(
                    "SELECT COUNT(*) FROM sync_queue WHERE part_serial = ? AND action_type = ? AND status = 'PENDING'",
                    (part_serial, action_type)
                )
                if cursor.fetchone()[0] > 0:
                    logger.warning("Duplicate pending action blocked", extra={
                        "compliance_boundary": "traceability_enforcement",
                        "event_id": "DUPLICATE_SERIAL_BLOCKED",
                        "trace_id": trace_id
                    })
                    return False

                conn.execute(
                    "INSERT INTO sync_queue (payload_hash, part_serial, action_type, payload_json, status, created_utc) VALUES (?, ?, ?, ?, 'PENDING', ?)",
                    (payload_hash, part_serial, action_type, payload_json, created_utc)
                )
                logger.info("Action queued locally", extra={
                    "compliance_boundary": "local_persistence",
                    "event_id": "QUEUE_INSERT_SUCCESS",
                    "trace_id": trace_id
                })
                return True
        except sqlite3.IntegrityError:
            logger.error("Hash collision or constraint violation", extra={
                "compliance_boundary": "data_integrity",
                "event_id": "SQL_CONSTRAINT_FAIL",
                "trace_id": trace_id
            })
            return False

    def sync_pending_records(self) -> Dict[str, int]:
        results = {"success": 0, "failed_network": 0, "failed_compliance": 0}
        
        with sqlite3.connect(self.db_path) as conn:
            cursor = conn.execute(
                "SELECT local_seq, payload_json, payload_hash FROM sync_queue WHERE status = 'PENDING' ORDER BY local_seq ASC"
            )
            rows = cursor.fetchall()

        for local_seq, payload_json, payload_hash in rows:
            payload = json.loads(payload_json)
            trace_id = f"SYNC-{local_seq}"
            try:
                response = self.session.post(
                    f"{self.api_base_url}/api/v1/mro/sync",
                    json={"payload": payload, "hash": payload_hash, "local_seq": local_seq},
                    timeout=10
                )
                response.raise_for_status()

                with sqlite3.connect(self.db_path) as conn:
                    conn.execute("UPDATE sync_queue SET status = 'SYNCED' WHERE local_seq = ?", (local_seq,))
                results["success"] += 1
                logger.info("Record synced successfully", extra={
                    "compliance_boundary": "upstream_validation",
                    "event_id": "SYNC_COMPLETE",
                    "trace_id": trace_id
                })

            except requests.exceptions.HTTPError as e:
                if 400 <= e.response.status_code < 500:
                    # Client error: compliance rejection (e.g., invalid serial, expired cert, schema mismatch)
                    with sqlite3.connect(self.db_path) as conn:
                        conn.execute("UPDATE sync_queue SET status = 'COMPLIANCE_REJECTED' WHERE local_seq = ?", (local_seq,))
                    results["failed_compliance"] += 1
                    logger.error("Compliance rejection from upstream", extra={
                        "compliance_boundary": "regulatory_validation",
                        "event_id": "COMPLIANCE_FAIL",
                        "trace_id": trace_id
                    })
                else:
                    results["failed_network"] += 1
                    logger.warning("Network sync failed after retries", extra={
                        "compliance_boundary": "connectivity",
                        "event_id": "NETWORK_TIMEOUT",
                        "trace_id": trace_id
                    })
            except Exception as e:
                results["failed_network"] += 1
                logger.error("Unexpected sync error", extra={
                    "compliance_boundary": "system_fault",
                    "event_id": "UNKNOWN_ERROR",
                    "trace_id": trace_id
                })

        return results

if __name__ == "__main__":
    import sys
    hub_url, token, db_path, command = sys.argv[1:5]
    engine = OfflineSyncEngine(db_path, hub_url, token)
    if command == "queue":
        queued = [engine.queue_maintenance_action(item["part_serial"], item["action_type"], item["payload"])
                  for item in json.loads(sys.argv[5])]
        print(json.dumps({"queued": queued}))
    elif command == "sync":
        print(json.dumps(engine.sync_pending_records()))
    else:
        sys.exit(f"unknown command {command}")
