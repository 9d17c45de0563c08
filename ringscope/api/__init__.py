"""The investigator app: FastAPI, pages, visualisation, evidence export."""
