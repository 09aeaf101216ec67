"""Seed 001's MRO pipeline worker (MROPipelineWorker), as the seed gives it,
driven from the command line by Cairn's tests.

Changes to the seed's code, each needed to run it at all: the seed's text
lost its indentation, restored here; `record.model_dump()` becomes
`record.model_dump(mode="json")`, because requests cannot serialize the
datetime the seed's own model holds (as written, every record fails with
a TypeError before it is sent); the gateway URL comes from the test.

usage: mro_pipeline.py GATEWAY_URL JSON_LIST   (each item: the raw record)
"""
import hashlib
import json
import logging
import time
from datetime import datetime, timezone, timedelta
from enum import Enum
from typing import Optional, Dict, Any
import requests
from pydantic import BaseModel, Field, ValidationError, field_validator
from tenacity import retry, stop_after_attempt, wait_exponential_jitter, retry_if_exception_type

# --- Structured Logging Configuration ---
class JSONFormatter(logging.Formatter):
    def format(self, record):
        log_entry = {
            "timestamp": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", "N/A"),
            "state_transition": getattr(record, "state_transition", None)
        }
        return json.dumps(log_entry)

logger = logging.getLogger("mro_fault_tolerant_pipeline")
logger.setLevel(logging.INFO)
handler = logging.StreamHandler()
handler.setFormatter(JSONFormatter())
logger.addHandler(handler)

class PipelineState(str, Enum):
    INGESTED = "INGESTED"
    VALIDATED = "VALIDATED"
    COMPLIANCE_CHECKED = "COMPLIANCE_CHECKED"
    PERSISTED = "PERSISTED"
    FAILED = "FAILED"

class MRORecord(BaseModel):
    work_order_id: str = Field(..., description="Unique maintenance work order identifier")
    aircraft_registration: str = Field(..., min_length=5, max_length=7, description="ICAO compliant tail number")
    part_serial_number: str = Field(..., description="OEM traceable serial number")
    technician_id: str = Field(..., description="FAA/EASA certified technician registry ID")
    airworthiness_cert_expiry: datetime
    maintenance_action: str
    state: PipelineState = Field(default=PipelineState.INGESTED)

    @field_validator('airworthiness_cert_expiry', mode='before')
    @classmethod
    def validate_cert_validity(cls, v):
        if isinstance(v, str):
            v = datetime.fromisoformat(v)
        if v <= datetime.now(timezone.utc):
            raise ValueError("Airworthiness certificate must be valid at time of record ingestion.")
        return v

class CircuitBreaker:
    def __init__(self, failure_threshold: int = 3, recovery_timeout: int = 60):
        self.failure_count = 0
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self.last_failure_time = None
        self.state = "CLOSED"

    def call(self, func, *args, **kwargs):
        if self.state == "OPEN":
            if time.time() - self.last_failure_time > self.recovery_timeout:
                self.state = "HALF-OPEN"
            else:
                raise RuntimeError("Circuit breaker is OPEN. Downstream service unavailable.")
        try:
            result = func(*args, **kwargs)
            self._on_success()
            return result
        except Exception as e:
            self._on_failure()
            raise e

    def _on_success(self):
        self.failure_count = 0
        self.state = "CLOSED"

    def _on_failure(self):
        self.failure_count += 1
        self.last_failure_time = time.time()
        if self.failure_count >= self.failure_threshold:
            self.state = "OPEN"

class MROPipelineWorker:
    def __init__(self, api_endpoint: str):
        self.api_endpoint = api_endpoint
        self.circuit_breaker = CircuitBreaker(failure_threshold=3, recovery_timeout=30)

    def _generate_idempotency_key(self, record: MRORecord) -> str:
        payload = f"{record.work_order_id}:{record.part_serial_number}:{record.technician_id}"
        return hashlib.sha256(payload.encode()).hexdigest()

    def _enforce_compliance_boundaries(self, record: MRORecord) -> bool:
        # Explicit regulatory boundary checks
        if not record.part_serial_number.startswith("SN-"):
            logger.warning("Non-compliant part serial format", extra={"correlation_id": "COMPLIANCE_CHECK"})
            return False
        if len(record.technician_id) < 8:
            logger.warning("Technician ID fails registry length validation", extra={"correlation_id": "COMPLIANCE_CHECK"})
            return False
        return True

    @retry(
        stop=stop_after_attempt(3),
        wait=wait_exponential_jitter(initial=1, max=10, jitter=2),
        retry=retry_if_exception_type((requests.exceptions.RequestException, ConnectionError)),
        reraise=True
    )
    def _persist_to_gateway(self, record: MRORecord) -> requests.Response:
        headers = {"X-Idempotency-Key": self._generate_idempotency_key(record)}
        return requests.post(
            f"{self.api_endpoint}/api/v1/mro/records",
            json=record.model_dump(mode="json"),
            headers=headers,
            timeout=10
        )

    def process_record(self, raw_data: Dict[str, Any]) -> PipelineState:
        correlation_id = raw_data.get("correlation_id", "UNKNOWN")
        try:
            record = MRORecord(**raw_data)
            logger.info("Record ingested successfully", extra={"correlation_id": correlation_id, "state_transition": PipelineState.INGESTED.value})
        except ValidationError as ve:
            logger.error(f"Schema validation failed: {ve}", extra={"correlation_id": correlation_id})
            return PipelineState.FAILED
        if not self._enforce_compliance_boundaries(record):
            logger.error("Compliance boundary violation", extra={"correlation_id": correlation_id})
            return PipelineState.FAILED
        record.state = PipelineState.VALIDATED
        logger.info("Validation complete", extra={"correlation_id": correlation_id, "state_transition": PipelineState.VALIDATED.value})
        try:
            self.circuit_breaker.call(self._persist_to_gateway, record)
            record.state = PipelineState.COMPLIANCE_CHECKED
            logger.info("Gateway persistence successful", extra={"correlation_id": correlation_id, "state_transition": PipelineState.COMPLIANCE_CHECKED.value})
        except Exception as e:
            logger.error(f"Persistence failed: {e}", extra={"correlation_id": correlation_id})
            return PipelineState.FAILED
        record.state = PipelineState.PERSISTED
        logger.info("Record fully persisted", extra={"correlation_id": correlation_id, "state_transition": PipelineState.PERSISTED.value})
        return PipelineState.PERSISTED

if __name__ == "__main__":
    import sys
    worker = MROPipelineWorker(sys.argv[1])
    states = [worker.process_record(raw).value for raw in json.loads(sys.argv[2])]
    print(json.dumps({"states": states}))
