. /lab/scenarios/$LAB_PART.guest.sh
