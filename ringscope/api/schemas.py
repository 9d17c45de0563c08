"""API response models, separate from the domain dataclasses."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from ringscope.model import Finding, Run

T = TypeVar("T")


class Health(BaseModel):
    status: str
    version: str
    store: str


class RunOut(BaseModel):
    id: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    data_fingerprint: str
    summary: dict[str, Any]

    @staticmethod
    def of(run: Run) -> RunOut:
        return RunOut(
            id=run.id,
            status=run.status,
            started_at=run.started_at,
            finished_at=run.finished_at,
            data_fingerprint=run.data_fingerprint,
            summary=run.summary,
        )


class MemberOut(BaseModel):
    account_id: str
    role: str
    score: float


class BeneficiaryOut(BaseModel):
    account_id: str
    role: str


class SignalOut(BaseModel):
    name: str
    value: float
    threshold: float
    weight: float


class DetectorOut(BaseModel):
    name: str
    version: str
    params: dict[str, Any]


class FindingSummary(BaseModel):
    id: str
    kind: str
    score: float
    size: int
    beneficiaries: list[BeneficiaryOut]
    explanation: str

    @staticmethod
    def of(f: Finding) -> FindingSummary:
        return FindingSummary(
            id=f.id,
            kind=f.kind,
            score=f.score,
            size=len(f.members),
            beneficiaries=[
                BeneficiaryOut(account_id=b.account_id, role=b.role) for b in f.beneficiaries
            ],
            explanation=f.explanation,
        )


class FindingDetail(FindingSummary):
    members: list[MemberOut]
    signals: list[SignalOut]
    detector: DetectorOut
    detectors: list[DetectorOut]
    evidence: dict[str, list[dict[str, Any]]]

    @staticmethod
    def of(f: Finding) -> FindingDetail:
        d = f.to_dict()
        return FindingDetail(
            **FindingSummary.of(f).model_dump(),
            members=[MemberOut(**m) for m in d["members"]],
            signals=[SignalOut(**s) for s in d["signals"]],
            detector=DetectorOut(**d["detector"]),
            detectors=[DetectorOut(**x) for x in d["detectors"]],
            evidence=d["evidence"],
        )


class Page(BaseModel, Generic[T]):
    run_id: str | None
    total: int
    offset: int
    limit: int
    items: list[T]


class ErrorOut(BaseModel):
    error: str
    detail: str
